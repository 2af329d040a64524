import SwitchyardCore

/// The kafka connector family. Registered by the executable when the `Kafka` trait is on.
public enum KafkaConnectors {
    public static let family = ConnectorFamily(
        name: "kafka",
        summary: "kafka connectors (not built yet)",
        sources: [],
        targets: []
    )
}
