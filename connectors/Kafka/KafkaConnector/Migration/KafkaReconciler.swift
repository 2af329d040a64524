import Logging
import SwitchyardCore

/// What `switchyard reconcile` found for a Kafka-to-Kafka bridge.
public struct ReconciliationReport: Sendable {
    public var sourceName: String
    public var targetName: String
    public var cluster: String
    public var topics: [TopicReconciliation]
    /// Wall-clock seconds the reading took.
    public var seconds: Double

    public var isEqual: Bool { topics.allSatisfy(\.isEqual) }
}

/// Compares what a bridge's Kafka source holds with what its Kafka target holds
/// (docs/migration.md, "Reconciliation"). Every librdkafka call runs on a dispatch queue of
/// its own, never on the cooperative pool.
public enum KafkaReconciler {
    public static func reconcile(source: ConnectorEntry, target: ConnectorEntry, cluster: String, show: Int = 5, logger: Logger? = nil) async throws -> ReconciliationReport {
        let logger = logger ?? {
            var logger = Logger(label: "switchyard.reconcile") { StreamLogHandler.standardError(label: $0) }
            logger.logLevel = .error
            return logger
        }()
        return try await BlockingQueue(label: "switchyard.reconcile").run {
            try reconcileBlocking(source: source, target: target, cluster: cluster, show: show, logger: logger)
        }
    }

    static func reconcileBlocking(source: ConnectorEntry, target: ConnectorEntry, cluster: String, show: Int, logger: Logger) throws -> ReconciliationReport {
        let topics = source.options.strings("topics") ?? []
        if let pattern = topics.first(where: { $0.hasPrefix("^") }) {
            throw OffsetTranslationError("\(source.path).kafka.topics: '\(pattern)' is a regular expression; reconciliation needs the topics named")
        }
        let topicTemplate = target.options.template("topic")!
        guard topicTemplate.readsOnlyChannel else {
            throw OffsetTranslationError("\(target.path).kafka.topic: '\(topicTemplate)' reads more of a message than its channel, so the target topic of a source topic is not known")
        }
        let group = "switchyard-reconcile"
        let sourceClient: RDKafkaInspector
        let targetClient: RDKafkaInspector
        do {
            sourceClient = try RDKafkaInspector(properties: KafkaClientOptions.properties(source.options), group: group, logger: logger, bulk: true)
            targetClient = try RDKafkaInspector(properties: KafkaClientOptions.properties(target.options), group: group, logger: logger, bulk: true)
        } catch {
            throw OffsetTranslationError("cannot create a Kafka client: \(error)")
        }
        let started = ContinuousClock.now
        var report = ReconciliationReport(sourceName: source.name, targetName: target.name, cluster: cluster, topics: [], seconds: 0)
        for topic in topics {
            let targetTopic = topicTemplate.renderString(Message(value: [], channel: topic))
            let sourceCount: Int32
            let targetCount: Int32
            do { sourceCount = try sourceClient.partitionCount(topic: topic) } catch {
                throw OffsetTranslationError("source topic '\(topic)' on cluster \(cluster): \(KafkaOffsetTranslator.describe(error))")
            }
            do { targetCount = try targetClient.partitionCount(topic: targetTopic) } catch {
                throw OffsetTranslationError("target topic '\(targetTopic)' (of source topic '\(topic)') on \(target.name): \(KafkaOffsetTranslator.describe(error))")
            }
            do {
                report.topics.append(try Reconciliation.reconcile(
                    cluster: cluster, sourceTopic: topic, targetTopic: targetTopic, sourcePartitions: sourceCount, targetPartitions: targetCount,
                    source: { KafkaPartitionScanner(client: sourceClient, topic: topic, partition: $0, positionsOf: nil) },
                    target: { KafkaPartitionScanner(client: targetClient, topic: targetTopic, partition: $0, positionsOf: (cluster, topic)) },
                    show: show))
            } catch {
                throw OffsetTranslationError("reading '\(topic)' on cluster \(cluster) or '\(targetTopic)' on \(target.name): \(KafkaOffsetTranslator.describe(error))")
            }
        }
        let elapsed = ContinuousClock.now - started
        report.seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return report
    }
}

/// One partition of a cluster, scanned through an ``RDKafkaInspector``.
struct KafkaPartitionScanner: PartitionScanner {
    let client: RDKafkaInspector
    let topic: String
    let partition: Int32
    let positionsOf: (cluster: String, topic: String)?

    func bounds() throws -> (start: Int64, end: Int64) {
        try client.watermarks(topic: topic, partition: partition)
    }

    func scan(from: Int64, to: Int64, _ body: (Int64, UInt64, RecordOrigin) -> Void) throws {
        try client.scan(topic: topic, partition: partition, from: from, to: to, positionsOf: positionsOf, body)
    }
}
