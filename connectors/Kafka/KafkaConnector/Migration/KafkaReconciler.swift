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
    /// - Parameter until: per source topic and partition, where the compared range ends (a
    ///   cutover's stop offsets); absent: each partition's end when reading starts.
    /// - Parameter headers: headers whose values are compared besides key and value.
    public static func reconcile(
        source: ConnectorEntry, target: ConnectorEntry, cluster: String, show: Int = 5, until: [String: [Int32: Int64]]? = nil,
        headers: [String] = [], logger: Logger? = nil
    ) async throws -> ReconciliationReport {
        let logger = logger ?? KafkaBridgeClients.defaultLogger("switchyard.reconcile")
        return try await BlockingQueue(label: "switchyard.reconcile").run {
            try reconcileBlocking(
                source: source, target: target, cluster: cluster, show: show, until: until, headers: headers, logger: logger)
        }
    }

    static func reconcileBlocking(
        source: ConnectorEntry, target: ConnectorEntry, cluster: String, show: Int, until: [String: [Int32: Int64]]?, headers: [String],
        logger: Logger
    ) throws -> ReconciliationReport {
        let clients = try KafkaBridgeClients(
            source: source, target: target, cluster: cluster, group: "switchyard-reconcile", purpose: "reconciliation", bulk: true,
            logger: logger)
        let started = ContinuousClock.now
        var report = ReconciliationReport(sourceName: source.name, targetName: target.name, cluster: cluster, topics: [], seconds: 0)
        for topic in clients.topics {
            let pair = try clients.pair(topic)
            let targetTopic = pair.target
            do {
                report.topics.append(
                    try Reconciliation.reconcile(
                        cluster: cluster, sourceTopic: topic, targetTopic: targetTopic, sourcePartitions: pair.sourcePartitions,
                        targetPartitions: pair.targetPartitions,
                        source: {
                            KafkaPartitionScanner(
                                client: clients.source, topic: topic, partition: $0, positionsOf: nil, headers: headers,
                                endLimit: until?[topic]?[$0])
                        },
                        target: {
                            KafkaPartitionScanner(
                                client: clients.target, topic: targetTopic, partition: $0, positionsOf: (cluster, topic), headers: headers)
                        },
                        show: show))
            } catch {
                throw OffsetTranslationError(
                    "reading '\(topic)' on cluster \(cluster) or '\(targetTopic)' on \(target.name): \(KafkaBridgeClients.describe(error))")
            }
        }
        let elapsed = ContinuousClock.now - started
        report.seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return report
    }
}

extension KafkaReconciler {
    /// Compares a Kafka source with a target of another kind, whose records `target` reads
    /// (one scanner per source topic, holding every record of the target that may name it;
    /// see ``Reconciliation``). `describe` names the target's side of a topic for the report.
    public static func reconcile(
        source: ConnectorEntry, cluster: String, targetName: String, show: Int = 5, headers: [String] = [], logger: Logger? = nil,
        describe: @escaping @Sendable (String) -> String,
        target: @escaping @Sendable (String) throws -> any PartitionScanner
    ) async throws -> ReconciliationReport {
        let logger = logger ?? KafkaBridgeClients.defaultLogger("switchyard.reconcile")
        return try await BlockingQueue(label: "switchyard.reconcile").run {
            let reader = try KafkaSourceReader(source: source, cluster: cluster, logger: logger)
            let client = reader.client
            let started = ContinuousClock.now
            var report = ReconciliationReport(sourceName: source.name, targetName: targetName, cluster: cluster, topics: [], seconds: 0)
            for topic in reader.topics {
                let partitions: Int32
                do { partitions = try client.partitionCount(topic: topic) } catch {
                    throw OffsetTranslationError("source topic '\(topic)' on cluster \(cluster): \(KafkaBridgeClients.describe(error))")
                }
                do {
                    report.topics.append(
                        try Reconciliation.reconcile(
                            cluster: cluster, sourceTopic: topic, targetTopic: describe(topic), sourcePartitions: partitions,
                            targetPartitions: 1,
                            source: {
                                KafkaPartitionScanner(client: client, topic: topic, partition: $0, positionsOf: nil, headers: headers)
                            },
                            target: { _ in try target(topic) },
                            show: show))
                } catch let error as OffsetTranslationError {
                    throw error
                } catch {
                    throw OffsetTranslationError(
                        "reading '\(topic)' on cluster \(cluster) or its records on \(targetName): \(KafkaBridgeClients.describe(error))")
                }
            }
            let elapsed = ContinuousClock.now - started
            report.seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            return report
        }
    }
}

/// One partition of a cluster, scanned through an ``RDKafkaInspector``.
struct KafkaPartitionScanner: PartitionScanner {
    let client: RDKafkaInspector
    let topic: String
    let partition: Int32
    let positionsOf: (cluster: String, topic: String)?
    /// Headers compared besides key and value.
    var headers: [String] = []
    /// Where the range ends at most (a cutover's stop offset).
    var endLimit: Int64? = nil

    func bounds() throws -> (start: Int64, end: Int64) {
        let marks = try client.watermarks(topic: topic, partition: partition)
        guard let endLimit else { return marks }
        return (min(marks.start, endLimit), min(marks.end, endLimit))
    }

    func scan(from: Int64, to: Int64, _ body: (Int64, UInt64, RecordOrigin) -> Void) throws {
        try client.scan(topic: topic, partition: partition, from: from, to: to, positionsOf: positionsOf, headers: headers, body)
    }
}
