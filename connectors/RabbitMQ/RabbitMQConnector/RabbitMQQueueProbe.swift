import SwitchyardCore

/// How many messages and consumers a `rabbitmq` source's queue has, asked of the broker with a
/// passive declare on a connection of its own (`switchyard cutover` on a RabbitMQ source:
/// nobody may consume while the cutover drains, and the queue must end empty).
public enum RabbitMQQueueProbe {
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// Blocking: call it on a thread of its own, never the cooperative pool.
    public static func counts(source entry: ConnectorEntry) throws -> (messages: Int, consumers: Int) {
        let queue = entry.options.string("queue") ?? ""
        do {
            let settings = try RabbitMQOptions.connectionSettings(entry.options, name: "\(entry.name)-probe")
            let connection = try AMQPConnection(settings)
            defer { connection.close() }
            return try connection.declareQueue(queue, passive: true)
        } catch let error as ConnectorError {
            throw Failure(description: "source '\(entry.name)': \(error.message)")
        } catch {
            throw Failure(description: "queue '\(queue)' of source '\(entry.name)': \(error)")
        }
    }
}
