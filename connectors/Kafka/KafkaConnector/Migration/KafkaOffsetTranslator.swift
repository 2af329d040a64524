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
    public static func translate(source: ConnectorEntry, target: ConnectorEntry, cluster: String, group: String, apply: Bool, logger: Logger? = nil) async throws -> OffsetTranslationReport {
        let logger = logger ?? {
            var logger = Logger(label: "switchyard.offsets") { StreamLogHandler.standardError(label: $0) }
            logger.logLevel = .error
            return logger
        }()
        let queue = BlockingQueue(label: "switchyard.offsets.translate")
        return try await queue.run {
            try translateBlocking(source: source, target: target, cluster: cluster, group: group, apply: apply, logger: logger)
        }
    }

    static func translateBlocking(source: ConnectorEntry, target: ConnectorEntry, cluster: String, group: String, apply: Bool, logger: Logger) throws -> OffsetTranslationReport {
        let topics = source.options.strings("topics") ?? []
        if let pattern = topics.first(where: { $0.hasPrefix("^") }) {
            throw OffsetTranslationError("\(source.path).kafka.topics: '\(pattern)' is a regular expression; offset translation needs the topics named")
        }
        let topicTemplate = target.options.template("topic")!
        guard topicTemplate.readsOnlyChannel else {
            throw OffsetTranslationError("\(target.path).kafka.topic: '\(topicTemplate)' reads more of a message than its channel, so the target topic of a source topic is not known")
        }
        let partitionText = target.options.template("partition").map { $0.constant.map { String(decoding: $0, as: UTF8.self) } ?? $0.source } ?? "hash"
        guard let layout = PartitionLayout(rawValue: partitionText) else {
            throw OffsetTranslationError("\(target.path).kafka.partition: '\(partitionText)' chooses partitions by a template or a number, so which target partition holds which source partition is not known; translation needs keep, mirror or hash")
        }
        let sourceBrokers = (source.options.strings("brokers") ?? []).joined(separator: ",")
        let targetBrokers = (target.options.strings("brokers") ?? []).joined(separator: ",")
        let sourceClient: RDKafkaInspector
        let targetClient: RDKafkaInspector
        do {
            sourceClient = try RDKafkaInspector(properties: KafkaClientOptions.properties(source.options), group: group, logger: logger)
            targetClient = try RDKafkaInspector(properties: KafkaClientOptions.properties(target.options), group: group, logger: logger)
        } catch {
            throw OffsetTranslationError("cannot create a Kafka client: \(error)")
        }
        var report = OffsetTranslationReport(group: group, sourceName: source.name, targetName: target.name, cluster: cluster, topics: [], applied: false)
        for topic in topics {
            let targetTopic = topicTemplate.renderString(Message(value: [], channel: topic))
            let sourceCount: Int32
            let targetCount: Int32
            do { sourceCount = try sourceClient.partitionCount(topic: topic) } catch {
                throw OffsetTranslationError("source topic '\(topic)' on cluster \(cluster) (\(sourceBrokers)): \(describe(error))")
            }
            do { targetCount = try targetClient.partitionCount(topic: targetTopic) } catch {
                throw OffsetTranslationError("target topic '\(targetTopic)' (of source topic '\(topic)') on \(target.name) (\(targetBrokers)): \(describe(error))")
            }
            if layout == .keep && targetCount < sourceCount {
                throw OffsetTranslationError("\(target.path).kafka.partition is keep, but target topic '\(targetTopic)' has \(targetCount) partitions and source topic '\(topic)' has \(sourceCount): partitions \(targetCount)..<\(sourceCount) cannot have been copied")
            }
            let committed: [Int32: Int64]
            do { committed = try sourceClient.committed(topic: topic, count: sourceCount) } catch {
                throw OffsetTranslationError("committed offsets of group '\(group)' on cluster \(cluster), topic '\(topic)': \(describe(error))")
            }
            let request = TranslationRequest(cluster: cluster, sourceTopic: topic, targetTopic: targetTopic, sourcePartitions: sourceCount, targetPartitions: targetCount, layout: layout, committed: committed)
            var partitions: [PartitionTranslation]
            do {
                partitions = try OffsetTranslation.translate(
                    request,
                    target: { try KafkaPartitionReader(client: targetClient, topic: targetTopic, partition: $0) },
                    source: { try KafkaPartitionReader(client: sourceClient, topic: topic, partition: $0) },
                    window: window)
            } catch {
                throw OffsetTranslationError("reading '\(topic)' on cluster \(cluster) or '\(targetTopic)' on \(target.name): \(describe(error))")
            }
            if let before = try? targetClient.committed(topic: targetTopic, count: targetCount) {
                for index in partitions.indices { partitions[index].previouslyCommitted = before[partitions[index].partition] }
            }
            report.topics.append(TranslatedTopic(sourceTopic: topic, targetTopic: targetTopic, sourcePartitions: sourceCount, targetPartitions: targetCount, layout: layout, committed: committed, partitions: partitions))
        }
        if report.topics.allSatisfy({ $0.committed.isEmpty }) {
            throw OffsetTranslationError("group '\(group)' has no committed offsets on cluster \(cluster) (\(sourceBrokers)) for topic\(topics.count == 1 ? "" : "s") \(topics.joined(separator: ", ")): an unknown group, or one that never committed")
        }
        guard apply, !report.isRefused else { return report }
        for (topic, offsets) in report.commits.sorted(by: { $0.key < $1.key }) {
            do { try targetClient.commit(topic: topic, offsets: offsets) } catch {
                switch error.code.c {
                case RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID, RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION, RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS:
                    throw OffsetTranslationError("group '\(group)' has active members on the target cluster (\(targetBrokers)): the cluster refused the commit (\(error.code.name)); stop the group's consumers there and translate again. Nothing was committed")
                default:
                    throw OffsetTranslationError("committing the translated offsets of group '\(group)' on the target cluster (\(targetBrokers)) failed: \(error)")
                }
            }
            let readBack = (try? targetClient.committed(topic: topic, count: report.topics.first { $0.targetTopic == topic }!.targetPartitions)) ?? [:]
            for (partition, offset) in offsets where readBack[partition] != offset {
                throw OffsetTranslationError("the commit of group '\(group)' on \(topic)[\(partition)] reads back as \(readBack[partition].map(String.init) ?? "none") instead of \(offset)")
            }
        }
        report.applied = true
        return report
    }

    static func describe(_ error: any Error) -> String {
        guard let error = error as? KafkaError else { return "\(error)" }
        switch error.code.c {
        case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC: return "the topic does not exist"
        case RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR__TIMED_OUT, RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN: return "the cluster does not answer (\(error))"
        default: return "\(error)"
        }
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
