import CRdKafka
import Logging
import SwitchyardCore

/// Why a translation could not be carried out at all (bad input, unreachable cluster, the
/// group active on the target). Nothing was committed when it is thrown.
public struct OffsetTranslationError: Error, CustomStringConvertible, Sendable {
    public var message: String

    public init(_ message: String) { self.message = message }

    public var description: String { message }
}

/// One topic pair: the source topic and the target topic a bridge copies it into.
public struct TranslatedTopic: Sendable {
    public var sourceTopic: String
    public var targetTopic: String
    public var sourcePartitions: Int32
    public var targetPartitions: Int32
    public var layout: PartitionLayout
    /// The group's committed offsets on the source, per source partition.
    public var committed: [Int32: Int64]
    public var partitions: [PartitionTranslation]
}

/// What `switchyard offsets translate` found (and, with `--apply`, committed).
public struct OffsetTranslationReport: Sendable {
    public var group: String
    public var sourceName: String
    public var targetName: String
    public var cluster: String
    public var topics: [TranslatedTopic]
    /// Whether the translated offsets were committed on the target (and read back equal).
    public var applied: Bool

    /// Every translated partition, in order.
    public var partitions: [PartitionTranslation] { topics.flatMap(\.partitions) }

    /// Whether some partition has no exact translation (then nothing is applied).
    public var isRefused: Bool { partitions.contains(where: \.isRefused) }

    /// The offsets to commit on the target, per target topic.
    public var commits: [String: [Int32: Int64]] {
        var result: [String: [Int32: Int64]] = [:]
        for partition in partitions {
            switch partition.verdict {
            case .exact, .atEnd: result[partition.topic, default: [:]][partition.partition] = partition.offset
            default: break
            }
        }
        return result
    }
}

/// Translates a consumer group's committed offsets from a bridge's Kafka source cluster to
/// its Kafka target cluster (docs/migration.md), and with `apply` commits them there.
///
/// Every librdkafka call runs on a dispatch queue of its own, never on the cooperative pool.
public enum KafkaOffsetTranslator {
    /// Records a probe reads at once.
    public static let window = 16

    /// - Parameters:
    ///   - source: a `kafka` source entry of the document (brokers, topics, TLS, SASL).
    ///   - target: a `kafka` target entry the source is routed to.
    ///   - cluster: the source's cluster name, as the bridge stamps it in the position headers.
    ///   - logger: where librdkafka's errors go; default: standard error, errors only (standard
    ///     output carries the report).
    public static func translate(
        source: ConnectorEntry, target: ConnectorEntry, cluster: String, group: String, apply: Bool, logger: Logger? = nil
    ) async throws -> OffsetTranslationReport {
        let logger = logger ?? KafkaBridgeClients.defaultLogger("switchyard.offsets")
        let queue = BlockingQueue(label: "switchyard.offsets.translate")
        return try await queue.run {
            try translateBlocking(source: source, target: target, cluster: cluster, group: group, apply: apply, logger: logger)
        }
    }

    static func translateBlocking(
        source: ConnectorEntry, target: ConnectorEntry, cluster: String, group: String, apply: Bool, logger: Logger
    ) throws -> OffsetTranslationReport {
        let partitionText =
            target.options.template("partition").map { $0.constant.map { String(decoding: $0, as: UTF8.self) } ?? $0.source } ?? "hash"
        guard let layout = PartitionLayout(rawValue: partitionText) else {
            throw OffsetTranslationError(
                "\(target.path).kafka.partition: '\(partitionText)' chooses partitions by a template or a number, so which target partition holds which source partition is not known; translation needs keep, mirror or hash"
            )
        }
        let clients = try KafkaBridgeClients(
            source: source, target: target, cluster: cluster, group: group, purpose: "offset translation", bulk: false, logger: logger)
        let sourceClient = clients.source
        let targetClient = clients.target
        let targetBrokers = clients.targetBrokers
        var report = OffsetTranslationReport(
            group: group, sourceName: source.name, targetName: target.name, cluster: cluster, topics: [], applied: false)
        for topic in clients.topics {
            let pair = try clients.pair(topic)
            let (targetTopic, sourceCount, targetCount) = (pair.target, pair.sourcePartitions, pair.targetPartitions)
            if layout == .keep && targetCount < sourceCount {
                throw OffsetTranslationError(
                    "\(target.path).kafka.partition is keep, but target topic '\(targetTopic)' has \(targetCount) partitions and source topic '\(topic)' has \(sourceCount): partitions \(targetCount)..<\(sourceCount) cannot have been copied"
                )
            }
            let committed: [Int32: Int64]
            do { committed = try sourceClient.committed(topic: topic, count: sourceCount) } catch {
                throw OffsetTranslationError(
                    "committed offsets of group '\(group)' on cluster \(cluster), topic '\(topic)': \(KafkaBridgeClients.describe(error))")
            }
            let request = TranslationRequest(
                cluster: cluster, sourceTopic: topic, targetTopic: targetTopic, sourcePartitions: sourceCount,
                targetPartitions: targetCount, layout: layout, committed: committed)
            var partitions: [PartitionTranslation]
            do {
                partitions = try OffsetTranslation.translate(
                    request,
                    target: { try KafkaPartitionReader(client: targetClient, topic: targetTopic, partition: $0) },
                    source: { try KafkaPartitionReader(client: sourceClient, topic: topic, partition: $0) },
                    window: window)
            } catch {
                throw OffsetTranslationError(
                    "reading '\(topic)' on cluster \(cluster) or '\(targetTopic)' on \(target.name): \(KafkaBridgeClients.describe(error))")
            }
            if let before = try? targetClient.committed(topic: targetTopic, count: targetCount) {
                for index in partitions.indices { partitions[index].previouslyCommitted = before[partitions[index].partition] }
            }
            report.topics.append(
                TranslatedTopic(
                    sourceTopic: topic, targetTopic: targetTopic, sourcePartitions: sourceCount, targetPartitions: targetCount,
                    layout: layout, committed: committed, partitions: partitions))
        }
        if report.topics.allSatisfy({ $0.committed.isEmpty }) {
            throw OffsetTranslationError(
                "group '\(group)' has no committed offsets on cluster \(cluster) (\(clients.sourceBrokers)) for topic\(clients.topics.count == 1 ? "" : "s") \(clients.topics.joined(separator: ", ")): an unknown group, or one that never committed"
            )
        }
        guard apply, !report.isRefused else { return report }
        for (topic, offsets) in report.commits.sorted(by: { $0.key < $1.key }) {
            do { try targetClient.commit(topic: topic, offsets: offsets) } catch {
                switch error.code.c {
                case RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID, RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION, RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS:
                    throw OffsetTranslationError(
                        "group '\(group)' has active members on the target cluster (\(targetBrokers)): the cluster refused the commit (\(error.code.name)); stop the group's consumers there and translate again. Nothing was committed"
                    )
                default:
                    throw OffsetTranslationError(
                        "committing the translated offsets of group '\(group)' on the target cluster (\(targetBrokers)) failed: \(error)")
                }
            }
            let readBack =
                (try? targetClient.committed(topic: topic, count: report.topics.first { $0.targetTopic == topic }!.targetPartitions)) ?? [:]
            for (partition, offset) in offsets where readBack[partition] != offset {
                throw OffsetTranslationError(
                    "the commit of group '\(group)' on \(topic)[\(partition)] reads back as \(readBack[partition].map(String.init) ?? "none") instead of \(offset)"
                )
            }
        }
        report.applied = true
        return report
    }
}

/// One partition of a cluster, read through an ``RDKafkaInspector``.
struct KafkaPartitionReader: PartitionReader {
    let client: RDKafkaInspector
    let topic: String
    let partition: Int32
    /// The bounds when the reader was made: the search works within them.
    private let range: (start: Int64, end: Int64)

    init(client: RDKafkaInspector, topic: String, partition: Int32) throws {
        self.client = client
        self.topic = topic
        self.partition = partition
        range = try client.watermarks(topic: topic, partition: partition)
    }

    func bounds() throws -> (start: Int64, end: Int64) { range }

    func read(from offset: Int64, limit: Int) throws -> [PositionedRecord] {
        try client.read(topic: topic, partition: partition, from: offset, limit: limit, end: range.end)
    }
}
