import Logging
import SwitchyardCore

/// The two clusters of a Kafka-to-Kafka bridge, as migration commands see them: a client of
/// each (never joining a group, never creating topics) and how source topics map to target
/// topics. Blocking; used on one thread.
struct KafkaBridgeClients {
    let source: RDKafkaInspector
    let target: RDKafkaInspector
    let sourceEntry: ConnectorEntry
    let targetEntry: ConnectorEntry
    let cluster: String
    /// The source topics (named, not patterns).
    let topics: [String]
    let topicTemplate: Template

    /// One source topic and its target topic, with their partition counts.
    struct TopicPair {
        var source: String
        var target: String
        var sourcePartitions: Int32
        var targetPartitions: Int32
    }

    /// - Parameters:
    ///   - purpose: what the command does, for errors ("offset translation").
    ///   - bulk: clients for reading whole partitions rather than short probes.
    init(source: ConnectorEntry, target: ConnectorEntry, cluster: String, group: String, purpose: String, bulk: Bool, logger: Logger) throws
    {
        topics = source.options.strings("topics") ?? []
        if let pattern = topics.first(where: { $0.hasPrefix("^") }) {
            throw OffsetTranslationError(
                "\(source.path).kafka.topics: '\(pattern)' is a regular expression; \(purpose) needs the topics named")
        }
        topicTemplate = target.options.template("topic")!
        guard topicTemplate.readsOnlyChannel else {
            throw OffsetTranslationError(
                "\(target.path).kafka.topic: '\(topicTemplate)' reads more of a message than its channel, so the target topic of a source topic is not known"
            )
        }
        do {
            self.source = try RDKafkaInspector(
                properties: KafkaClientOptions.properties(source.options), group: group, logger: logger, bulk: bulk)
            self.target = try RDKafkaInspector(
                properties: KafkaClientOptions.properties(target.options), group: group, logger: logger, bulk: bulk)
        } catch {
            throw OffsetTranslationError("cannot create a Kafka client: \(error)")
        }
        sourceEntry = source
        targetEntry = target
        self.cluster = cluster
    }

    var sourceBrokers: String { (sourceEntry.options.strings("brokers") ?? []).joined(separator: ",") }
    var targetBrokers: String { (targetEntry.options.strings("brokers") ?? []).joined(separator: ",") }

    /// The target topic of `topic` and both partition counts; throws naming a missing topic.
    func pair(_ topic: String) throws -> TopicPair {
        let targetTopic = topicTemplate.renderString(Message(value: [], channel: topic))
        let sourceCount: Int32
        let targetCount: Int32
        do { sourceCount = try source.partitionCount(topic: topic) } catch {
            throw OffsetTranslationError("source topic '\(topic)' on cluster \(cluster) (\(sourceBrokers)): \(Self.describe(error))")
        }
        do { targetCount = try target.partitionCount(topic: targetTopic) } catch {
            throw OffsetTranslationError(
                "target topic '\(targetTopic)' (of source topic '\(topic)') on \(targetEntry.name) (\(targetBrokers)): \(Self.describe(error))"
            )
        }
        return TopicPair(source: topic, target: targetTopic, sourcePartitions: sourceCount, targetPartitions: targetCount)
    }

    /// A logger for librdkafka's errors on standard error (standard output carries reports).
    static func defaultLogger(_ label: String) -> Logger {
        var logger = Logger(label: label) { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = .error
        return logger
    }

    static func describe(_ error: any Error) -> String {
        guard let error = error as? KafkaError else { return "\(error)" }
        if error.code == .unknownTopicOrPartition || error.code == .unknownTopic { return "the topic does not exist" }
        if !error.isRetriable { return "\(error)" }
        return "the cluster does not answer or failed (\(error))"
    }
}
