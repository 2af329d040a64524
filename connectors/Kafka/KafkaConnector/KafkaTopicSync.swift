import CRdKafka
import Logging
import SwitchyardCore

/// What a `kafka` target checks and creates before its first write: the target topics it will
/// write that are missing are created (`createTopics`), sized after the Kafka source topics
/// routed into them or with a fixed count, with configs copied from the source topic; and with
/// `partition: keep`, a target topic with fewer partitions than a source topic written into it
/// is refused. Blocking: ``run(logger:)`` runs on the target's own queue.
struct KafkaTopicSync: Sendable {
    enum PartitionCount: Sendable, Equatable {
        /// The partition count of the source topic (the largest, when several feed one topic):
        /// `partitions` absent.
        case source
        case fixed(Int32)
    }

    /// The `createTopics` option.
    struct Creation: Sendable {
        var partitions: PartitionCount
        var replicationFactor: Int32
        var configs: [String]

        init?(_ options: OptionValues?) {
            guard let options else { return nil }
            partitions = options.int("partitions").map { .fixed(Int32($0)) } ?? .source
            replicationFactor = Int32(options.int("replicationFactor") ?? -1)
            configs = options.strings("configs") ?? []
        }
    }

    /// A source topic of a Kafka source routed to the target.
    struct Feed: Sendable {
        var source: ConnectorEntry
        var topic: String
    }

    /// The target's options path, for messages (`spec.targets[0].kafka`).
    let path: String
    let targetProperties: [(String, String)]
    let creation: Creation?
    let keep: Bool
    /// Each target topic the target is known to write, and the source topics written into it.
    let topics: [(target: String, feeds: [Feed])]

    /// - Parameters:
    ///   - topic: the target's `topic` template (constant, or reading only `{{ channel }}` when
    ///     `createTopics` is set: the validation sees to it).
    ///   - feeders: the sources routed to the target.
    init(options: OptionValues, topic: Template, keep: Bool, feeders: [ConnectorEntry], logger: Logger) {
        path = options.path
        targetProperties = KafkaClientOptions.properties(options)
        creation = Creation(options.object("createTopics"))
        self.keep = keep
        var topics: [(target: String, feeds: [Feed])] = []
        func add(_ target: String, _ feed: Feed?) {
            if let index = topics.firstIndex(where: { $0.target == target }) {
                if let feed { topics[index].feeds.append(feed) }
            } else {
                topics.append((target, feed.map { [$0] } ?? []))
            }
        }
        let constant = topic.constant.map { String(decoding: $0, as: UTF8.self) }
        if let constant { add(constant, nil) }
        for feeder in feeders {
            guard feeder.kind == "kafka" else {
                if constant == nil, creation != nil {
                    logger.warning(
                        "the target topics of this source are known only when its messages arrive; they are not created",
                        metadata: [
                            "path": "\(options.path).createTopics", "source": "\(feeder.name)", "kind": "\(feeder.kind)",
                        ])
                }
                continue
            }
            for sourceTopic in feeder.options.strings("topics") ?? [] {
                if sourceTopic.hasPrefix("^") {
                    logger.warning(
                        "a source topic pattern is not matched against the cluster; its topics are neither checked nor created",
                        metadata: [
                            "path": "\(options.path)", "source": "\(feeder.name)", "pattern": "\(sourceTopic)",
                        ])
                    continue
                }
                let target = constant ?? topic.renderString(Message(value: [], channel: sourceTopic))
                add(target, Feed(source: feeder, topic: sourceTopic))
            }
        }
        self.topics = topics
    }

    /// Whether there is anything to do.
    var isNeeded: Bool {
        creation != nil || (keep && topics.contains { !$0.feeds.isEmpty })
    }

    /// Checks and creates the target topics. Throws ``ConnectorRefusal`` when the clusters and
    /// the document disagree, ``ConnectorError`` (retriable) when a cluster does not answer or
    /// a source topic is missing.
    func run(logger: Logger) throws {
        let target = try Self.admin(targetProperties, logger, place: "\(path).brokers (the target cluster)")
        let existing = try Self.ask(place: "\(path).brokers (the target cluster)") { try target.partitionCounts() }
        var sources = SourceClusters(logger: logger)
        for (targetTopic, feeds) in topics {
            var counts: [(feed: Feed, count: Int32)] = []
            if keep || creation?.partitions == .source {
                for feed in feeds {
                    if let count = try sources.partitionCount(feed) { counts.append((feed, count)) }
                }
            }
            let widest = counts.max { $0.count < $1.count }
            if let have = existing[targetTopic] {
                if keep, let widest, widest.count > have { throw keepRefusal(targetTopic, have, widest) }
                continue
            }
            guard let creation else { continue }
            let partitions: Int32
            switch creation.partitions {
            case .fixed(let count):
                partitions = count
                if keep, let widest, widest.count > count { throw keepRefusal(targetTopic, count, widest) }
            case .source:
                guard let widest else {
                    if let feed = feeds.first {
                        throw ConnectorError.retriable(
                            "\(path).createTopics: source topic '\(feed.topic)' (source \(feed.source.name)) does not exist on its cluster, so target topic '\(targetTopic)' cannot be sized after it; it is created once the source topic exists"
                        )
                    }
                    throw ConnectorRefusal(
                        "\(path).createTopics: without partitions, target topic '\(targetTopic)' is sized after a source topic, but no kafka source with named topics is routed to this target; set partitions"
                    )
                }
                partitions = widest.count
            }
            var configs: [(String, String)] = []
            if !creation.configs.isEmpty {
                guard let feed = feeds.first else {
                    throw ConnectorRefusal(
                        "\(path).createTopics.configs copies configs from a source topic, but no kafka source with named topics writes into target topic '\(targetTopic)'"
                    )
                }
                let found = try sources.configs(feed)
                configs = creation.configs.compactMap { name in found[name].map { (name, $0) } }
                let absent = creation.configs.filter { found[$0] == nil }
                if !absent.isEmpty {
                    logger.notice(
                        "the source topic does not report these configs; they are not copied",
                        metadata: [
                            "sourceTopic": "\(feed.topic)", "targetTopic": "\(targetTopic)", "configs": "\(absent.joined(separator: ","))",
                        ])
                }
            }
            try create(
                targetTopic, partitions: partitions, replicationFactor: creation.replicationFactor, configs: configs, on: target,
                logger: logger)
        }
    }

    func create(
        _ topic: String, partitions: Int32, replicationFactor: Int32, configs: [(String, String)], on admin: RDKafkaTopicAdmin,
        logger: Logger
    ) throws {
        do {
            try admin.createTopic(topic, partitions: partitions, replicationFactor: replicationFactor, configs: configs)
            logger.notice(
                "created the target topic",
                metadata: [
                    "topic": "\(topic)", "partitions": "\(partitions)", "replicationFactor": "\(replicationFactor)",
                    "configs": "\(configs.map { "\($0.0)=\($0.1)" }.joined(separator: ","))",
                ])
        } catch {
            if error.code == KafkaError.Code(RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
                // Another replica created it meanwhile: the next open checks its partitions.
                throw ConnectorError.retriable(
                    "\(path).createTopics: target topic '\(topic)' appeared while it was being created; checking it again")
            }
            let text =
                "\(path).createTopics: the target cluster did not create topic '\(topic)' (\(partitions) partitions, replication factor \(replicationFactor), configs \(configs.map { "\($0.0)=\($0.1)" })): \(error)"
            if error.isRetriable { throw ConnectorError.retriable(text) }
            throw ConnectorRefusal(text)
        }
    }

    func keepRefusal(_ targetTopic: String, _ have: Int32, _ widest: (feed: Feed, count: Int32)) -> ConnectorRefusal {
        ConnectorRefusal(
            "\(path).partition: keep writes each message to the partition number it has on its source, but target topic '\(targetTopic)' has \(have) partitions and source topic '\(widest.feed.topic)' (source \(widest.feed.source.name)) has \(widest.count); give the target topic \(widest.count) partitions, or use partition: mirror"
        )
    }

    static func admin(_ properties: [(String, String)], _ logger: Logger, place: String) throws -> RDKafkaTopicAdmin {
        do { return try RDKafkaTopicAdmin(properties: properties, logger: logger) } catch {
            throw ConnectorRefusal("\(place): cannot create a Kafka client: \(error)")
        }
    }

    /// Runs a request; a cluster that does not answer is retriable, anything else a refusal.
    static func ask<T>(place: String, _ request: () throws -> T) throws -> T {
        do { return try request() } catch let error as KafkaError {
            if error.isRetriable { throw ConnectorError.retriable("\(place): the cluster does not answer or failed: \(error)") }
            throw ConnectorRefusal("\(place): \(error)")
        }
    }

    /// The source clusters, each asked once for its topics' partition counts.
    struct SourceClusters {
        let logger: Logger
        var admins: [String: RDKafkaTopicAdmin] = [:]
        var counts: [String: [String: Int32]] = [:]

        init(logger: Logger) {
            self.logger = logger
        }

        static func place(_ feed: Feed) -> String {
            "\(feed.source.options.path).brokers (source \(feed.source.name))"
        }

        mutating func admin(_ feed: Feed) throws -> RDKafkaTopicAdmin {
            if let admin = admins[feed.source.name] { return admin }
            let made = try KafkaTopicSync.admin(KafkaClientOptions.properties(feed.source.options), logger, place: Self.place(feed))
            admins[feed.source.name] = made
            return made
        }

        /// The partition count of the feed's source topic; nil when the topic does not exist.
        mutating func partitionCount(_ feed: Feed) throws -> Int32? {
            if let known = counts[feed.source.name] { return known[feed.topic] }
            let admin = try admin(feed)
            let asked = try KafkaTopicSync.ask(place: Self.place(feed)) { try admin.partitionCounts() }
            counts[feed.source.name] = asked
            return asked[feed.topic]
        }

        mutating func configs(_ feed: Feed) throws -> [String: String] {
            let admin = try admin(feed)
            return try KafkaTopicSync.ask(place: "\(Self.place(feed)), topic '\(feed.topic)'") { try admin.configs(topic: feed.topic) }
        }
    }
}
