import SwitchyardCore

/// The rabbitmq connector family. Registered by the executable when the `RabbitMQ` trait is on.
public enum RabbitMQConnectors {
    public static let family = ConnectorFamily(
        name: "rabbitmq",
        summary: "rabbitmq connectors (not built yet)",
        sources: [],
        targets: []
    )
}
