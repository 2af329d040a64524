import Logging
import SwitchyardCore

/// A Kafka source's records as messages, for comparing them with a target of another kind
/// (`switchyard reconcile` on a PostgreSQL target): the named topics, each partition's range
/// when asked, and the records of a range in offset order. A client that never joins a group.
/// Blocking and not thread-safe: created and used on one thread, never the cooperative pool.
public final class KafkaSourceReader {
    let client: RDKafkaInspector
    public let topics: [String]
    public let cluster: String

    public init(source: ConnectorEntry, cluster: String, logger: Logger? = nil) throws {
        let topics = source.options.strings("topics") ?? []
        if let pattern = topics.first(where: { $0.hasPrefix("^") }) {
            throw OffsetTranslationError(
                "\(source.path).kafka.topics: '\(pattern)' is a regular expression; reconciliation needs the topics named")
        }
        self.topics = topics
        self.cluster = cluster
        let logger = logger ?? KafkaBridgeClients.defaultLogger("switchyard.reconcile")
        do {
            client = try RDKafkaInspector(
                properties: KafkaClientOptions.properties(source.options), group: "switchyard-reconcile", logger: logger, bulk: true)
        } catch {
            throw OffsetTranslationError("cannot create a Kafka client: \(error)")
        }
    }

    /// Each partition's range now: log start to high watermark.
    public func ranges(topic: String) throws -> [(partition: Int32, start: Int64, end: Int64)] {
        do {
            let count = try client.partitionCount(topic: topic)
            return try (0..<count).map { partition in
                let marks = try client.watermarks(topic: topic, partition: partition)
                return (partition, marks.start, marks.end)
            }
        } catch {
            throw OffsetTranslationError("source topic '\(topic)' on cluster \(cluster): \(KafkaBridgeClients.describe(error))")
        }
    }

    /// Every named topic's partitions and their ranges now.
    public typealias Ranges = [(topic: String, partitions: [(partition: Int32, start: Int64, end: Int64)])]

    public func ranges() throws -> Ranges {
        try topics.map { topic in (topic, try ranges(topic: topic)) }
    }

    /// Records in `ranges`.
    public static func count(_ ranges: Ranges) -> Int {
        ranges.reduce(0) { total, topic in total + topic.partitions.reduce(0) { $0 + Int($1.end - $1.start) } }
    }

    /// Every record in `ranges`, partition by partition, each in offset order.
    public func forEachMessage(in ranges: Ranges, _ body: (Message) throws -> Void) throws {
        for (topic, partitions) in ranges {
            for range in partitions {
                try forEachMessage(topic: topic, partition: range.partition, from: range.start, to: range.end, body)
            }
        }
    }

    /// The records of `[from, to)`, in offset order.
    public func forEachMessage(topic: String, partition: Int32, from: Int64, to: Int64, _ body: (Message) throws -> Void) throws {
        try client.scanMessages(topic: topic, partition: partition, from: from, to: to, body)
    }
}
