import CRdKafka
import Logging
import SwitchyardCore

/// What a cutover asks of a Kafka-to-Kafka bridge's clusters before and after the bounded
/// copy (docs/migration.md, "switchyard cutover"). Every librdkafka call runs on a dispatch
/// queue of its own, never on the cooperative pool.
public enum KafkaCutoverChecks {
    /// Per source topic and partition: an offset (an end, or a committed position).
    public typealias Offsets = [String: [Int32: Int64]]

    /// The log start and end (high watermark) of a partition.
    public struct Range: Sendable, Equatable {
        public var start: Int64
        public var end: Int64
    }

    /// The range of every partition of the bridge's source topics.
    public static func sourceRanges(source: ConnectorEntry, target: ConnectorEntry, cluster: String, logger: Logger? = nil) async throws
        -> [String: [Int32: Range]]
    {
        let logger = logger ?? KafkaBridgeClients.defaultLogger("switchyard.cutover")
        return try await BlockingQueue(label: "switchyard.cutover").run {
            let clients = try KafkaBridgeClients(
                source: source, target: target, cluster: cluster, group: "switchyard-cutover", purpose: "a cutover", bulk: false,
                logger: logger)
            var ends: [String: [Int32: Range]] = [:]
            for topic in clients.topics {
                let pair = try clients.pair(topic)
                for partition in 0..<pair.sourcePartitions {
                    do {
                        let marks = try clients.source.watermarks(topic: topic, partition: partition)
                        ends[topic, default: [:]][partition] = Range(start: marks.start, end: marks.end)
                    } catch {
                        throw OffsetTranslationError(
                            "the end of '\(topic)'[\(partition)] on cluster \(cluster): \(KafkaBridgeClients.describe(error))")
                    }
                }
            }
            return ends
        }
    }

    /// A group's committed offsets on the source cluster, per source topic (partitions
    /// without one are absent).
    public static func committedOnSource(
        source: ConnectorEntry, target: ConnectorEntry, cluster: String, group: String, logger: Logger? = nil
    ) async throws -> Offsets {
        let logger = logger ?? KafkaBridgeClients.defaultLogger("switchyard.cutover")
        return try await BlockingQueue(label: "switchyard.cutover").run {
            let clients = try KafkaBridgeClients(
                source: source, target: target, cluster: cluster, group: group, purpose: "a cutover", bulk: false, logger: logger)
            var result: Offsets = [:]
            for topic in clients.topics {
                let pair = try clients.pair(topic)
                do { result[topic] = try clients.source.committed(topic: topic, count: pair.sourcePartitions) } catch {
                    throw OffsetTranslationError(
                        "committed offsets of group '\(group)' on cluster \(cluster): \(KafkaBridgeClients.describe(error))")
                }
            }
            return result
        }
    }

    /// What the source cluster's coordinator says of a group.
    public struct GroupState: Sendable, Equatable {
        /// Members the coordinator lists.
        public var members: Int
        /// The group's state as the broker names it (Stable, Empty, Dead, ...).
        public var state: String
        /// Whether a generation of the group is alive (members listed, or a rebalancing or
        /// stable state: some brokers leave the member list empty).
        public var isActive: Bool
    }

    /// The state of `group` on the source cluster; nil when the cluster does not describe
    /// groups (librdkafka's mock cluster).
    public static func groupOnSource(source: ConnectorEntry, cluster: String, group: String, logger: Logger? = nil) async throws
        -> GroupState?
    {
        let logger = logger ?? KafkaBridgeClients.defaultLogger("switchyard.cutover")
        return try await BlockingQueue(label: "switchyard.cutover").run {
            do {
                let admin = try RDKafkaTopicAdmin(properties: KafkaClientOptions.properties(source.options), logger: logger)
                guard let description = try admin.describe(group: group) else { return nil }
                return GroupState(members: description.members, state: description.stateName, isActive: description.isActive)
            } catch {
                throw OffsetTranslationError("the state of group '\(group)' on cluster \(cluster): \(KafkaBridgeClients.describe(error))")
            }
        }
    }
}
