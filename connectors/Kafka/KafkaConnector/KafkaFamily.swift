import SwitchyardCore

/// The kafka connector family. Registered by the executable when the `Kafka` trait is on.
public enum KafkaConnectors {
    public static let family = ConnectorFamily(
        name: "kafka",
        summary: "Kafka consumer-group source and idempotent producer target (librdkafka)",
        sources: [KafkaSource.kind],
        targets: [KafkaTarget.kind],
        notes: [
            "librdkafka \(KafkaVersion.text)",
            "source: offsets are committed only for the contiguous acknowledged prefix of each owned partition",
        ]
    )
}
