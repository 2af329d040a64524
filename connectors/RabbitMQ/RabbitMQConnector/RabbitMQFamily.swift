import SwitchyardCore

/// The rabbitmq connector family. Registered by the executable when the `RabbitMQ` trait is on.
public enum RabbitMQConnectors {
    public static let family = ConnectorFamily(
        name: "rabbitmq",
        summary: "RabbitMQ (AMQP 0-9-1) queue source and confirmed publisher target, on rabbitmq-c",
        sources: [RabbitMQSource.kind],
        targets: [RabbitMQTarget.kind],
        notes: [
            "rabbitmq-c 0.11 (Debian librabbitmq); AMQP 0-9-1 only (no AMQP 1.0, no streams protocol)",
            "source: at-least-once; basic.ack only for the prefix every target confirmed; batch shard = connection generation",
            "target: publisher confirms; mandatory unroutable messages are permanent failures (dead-letter target)",
        ]
    )
}
