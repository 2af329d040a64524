import Dispatch
import Logging
import Synchronization
import SwitchyardCore

/// The `kafka` target: an idempotent producer; each message's delivery report becomes its
/// outcome (written, retriable, permanent for the message, or the target down).
///
/// Threads: messages are handed to librdkafka on the target's own queue; a dedicated poll
/// thread serves delivery reports, which resume the waiting write through a per-batch
/// ``DeliveryTracker``. Each lane may have several batches in flight (`inFlight`), and several
/// lanes at once.
final class KafkaTarget: Target {
    static let kind = TargetKind(
        kind: "kafka",
        summary: "produces to Kafka (librdkafka, idempotent by default); delivery reports become per-message outcomes",
        options: ObjectSchema(
            doc: "Produces to a Kafka topic.",
            KafkaClientOptions.fields + [
                OptionField("topic", .template, required: true, doc: "topic template, e.g. mirror.{{ channel }}"),
                OptionField("key", .template, doc: "key template; absent: the message's own key"),
                OptionField(
                    "partition", .template, default: "hash",
                    doc:
                        "hash: librdkafka's murmur2 partitioner over the key (Java-compatible; random without a key); keep: the message's own partition; mirror: the message's own partition when the target topic has that partition, else hash (the target topic's partition count is asked of the cluster and refreshed every 30s); or a template rendering a partition number"
                ),
                OptionField(
                    "value", .template,
                    doc:
                        "value template (reshape the message, e.g. '{\"order\": {{ value }}, \"region\": \"{{ headers.region }}\"}'); absent: the message's own value"
                ),
                OptionField("keepHeaders", .bool, default: "true", doc: "copy the message's headers"),
                OptionField("headers", .map(.template), doc: "headers to add (after the kept ones), as templates"),
                OptionField("compression", .choice(["none", "gzip", "snappy", "lz4", "zstd"]), default: "none", doc: "compression.codec"),
                OptionField("acks", .choice(["all", "1", "0"]), default: "all", doc: "acknowledgements the leader waits for (acks)"),
                OptionField(
                    "idempotence", .bool, default: "true",
                    doc: "enable.idempotence: no duplicates or reordering from producer retries (needs acks all)"),
                OptionField("linger", .duration, default: "5ms", doc: "how long librdkafka waits to fill a request (linger.ms)"),
                OptionField(
                    "deliveryTimeout", .duration, default: "30s",
                    doc:
                        "how long librdkafka retries a message before reporting it failed (message.timeout.ms); the core then retries it with backoff"
                ),
                OptionField(
                    "createTopics", .object(createTopicsSchema),
                    doc:
                        "before the first write, create the target topics that are missing (the topic must be constant or read only {{ channel }}); absent: topics are not created (a broker may still create them on first use)"
                ),
            ]),
        validate: { options in
            var issues: [ConfigIssue] = []
            if let topic = options.template("topic"), topic.constant?.isEmpty == true {
                issues.append(options.issue("topic", "must not be empty"))
            }
            if let partition = options.template("partition"), let constant = partition.constant {
                let text = String(decoding: constant, as: UTF8.self)
                if text != "hash" && text != "keep" && text != "mirror" && (Int32(text) ?? -1) < 0 {
                    issues.append(
                        options.issue(
                            "partition", "expected hash, keep, mirror, a partition number or a template rendering one, found '\(text)'"))
                }
            }
            issues += validateCreateTopics(options)
            if options.bool("idempotence") == true, let acks = options.string("acks"), acks != "all" {
                issues.append(
                    options.issue("acks", "acks \(acks) needs idempotence: false (an idempotent producer waits for all replicas)"))
            }
            issues += KafkaClientOptions.validate(options, reserved: reserved, derived: [])
            return issues
        },
        batchesInFlight: 4,
        make: { setup in KafkaTarget(setup) }
    )

    static let createTopicsSchema = ObjectSchema(
        doc: "Creates the missing target topics before the first write.",
        [
            OptionField(
                "partitions", .int(min: 1, max: 1_000_000),
                doc:
                    "partitions of each created topic; absent: as many as the source topic written into it (of a kafka source routed to this target; the largest when several)"
            ),
            OptionField(
                "replicationFactor", .int(min: -1, max: 32767), default: "-1",
                doc: "replicas of each partition; -1: the broker's default (default.replication.factor)"),
            OptionField(
                "configs", .list(.string),
                doc:
                    "topic configs copied from the source topic (DescribeConfigs on the source cluster), e.g. [retention.ms, cleanup.policy]; a config the source does not report is not copied"
            ),
        ])

    static func validateCreateTopics(_ options: OptionValues) -> [ConfigIssue] {
        guard let create = options.object("createTopics") else { return [] }
        var issues: [ConfigIssue] = []
        if create.int("replicationFactor") == 0 {
            issues.append(create.issue("replicationFactor", "expected -1 (the broker's default) or at least 1"))
        }
        for (index, name) in (create.strings("configs") ?? []).enumerated() where name.trimmingSpaces.isEmpty {
            issues.append(
                ConfigIssue(path: "\(create.path(of: "configs"))[\(index)]", line: create.line(of: "configs"), message: "must not be empty")
            )
        }
        if let topic = options.template("topic"), topic.constant == nil, !topic.readsOnlyChannel {
            issues.append(
                options.issue(
                    "createTopics",
                    "needs the target topics known before messages arrive: topic '\(topic)' must be constant or read only {{ channel }}"))
        }
        return issues
    }

    static let reserved: [String: String] = [
        "bootstrap.servers": "use brokers", "metadata.broker.list": "use brokers", "client.id": "use clientId",
        "acks": "use acks", "request.required.acks": "use acks", "enable.idempotence": "use idempotence",
        "compression.codec": "use compression", "compression.type": "use compression",
        "message.timeout.ms": "use deliveryTimeout", "delivery.timeout.ms": "use deliveryTimeout",
        "linger.ms": "use linger", "queue.buffering.max.ms": "use linger",
    ]

    enum PartitionChoice: Sendable {
        case hash
        case keep
        /// Keep when the target topic has the partition, else hash.
        case mirror
        case template(Template)
    }

    /// How long a topic's partition count is trusted before it is asked again.
    static let partitionCountTTL: Duration = .seconds(30)

    /// A producer and the thread that polls it.
    final class Client: Sendable {
        let producer: RDKafkaProducer
        let stop = Atomic<Bool>(false)
        let stopped = DispatchSemaphore(value: 0)

        init(producer: RDKafkaProducer, label: String) {
            self.producer = producer
            DispatchQueue(label: label).async { [self] in
                while !stop.load(ordering: .acquiring) { producer.poll(timeoutMs: 100) }
                stopped.signal()
            }
        }

        /// Stops polling, delivers what is queued (at most `timeoutMs`), fails the rest.
        func shutdown(timeoutMs: Int32) {
            stop.store(true, ordering: .releasing)
            stopped.wait()
            if !producer.flush(timeoutMs: timeoutMs) { producer.purge() }
            producer.poll(timeoutMs: 0)
        }
    }

    let name: String
    let properties: [(String, String)]
    let topic: Template
    let constantTopic: String?
    let key: Template?
    let value: Template?
    let partition: PartitionChoice
    /// Partition counts of target topics (for `partition: mirror`); used on `io` only.
    let partitionCounts = Mutex<[String: (count: Int32?, asked: ContinuousClock.Instant)]>([:])
    let keepHeaders: Bool
    let headers: [(String, Template)]
    let logger: Logger
    let io: BlockingQueue
    let client = Mutex<Client?>(nil)
    let healthState = Mutex<ConnectorHealth>(.connecting)
    /// The topic checks and creation of ``prepare()``; nil once done (or when there is nothing to do).
    let topicSync: Mutex<KafkaTopicSync?>

    init(_ setup: ConnectorSetup) {
        let options = setup.options
        name = setup.name
        logger = setup.logger
        topic = options.template("topic")!
        constantTopic = topic.constant.map { String(decoding: $0, as: UTF8.self) }
        key = options.template("key")
        value = options.template("value")
        let partitionTemplate = options.template("partition")
        switch partitionTemplate?.constant.map({ String(decoding: $0, as: UTF8.self) }) {
        case "keep": partition = .keep
        case "mirror": partition = .mirror
        case "hash": partition = .hash
        default: partition = partitionTemplate.map(PartitionChoice.template) ?? .hash
        }
        keepHeaders = options.bool("keepHeaders") ?? true
        headers = (options.map("headers") ?? []).compactMap { entry in
            if case .template(let template) = entry.value { return (entry.key, template) }
            return nil
        }
        var properties = KafkaClientOptions.properties(options).filter { property in
            !KafkaClientOptions.raw(options).contains { $0.0 == property.0 }
        }
        let idempotence = options.bool("idempotence") ?? true
        properties += [
            ("acks", options.string("acks") ?? "all"),
            ("enable.idempotence", idempotence ? "true" : "false"),
            ("compression.codec", options.string("compression") ?? "none"),
            ("linger.ms", String(Self.milliseconds(options.duration("linger") ?? .milliseconds(5)))),
            ("message.timeout.ms", String(max(1, Self.milliseconds(options.duration("deliveryTimeout") ?? .seconds(30))))),
            ("partitioner", "murmur2_random"),
            // The local queue holds copies of the payloads: bound it by the byte budget.
            ("queue.buffering.max.kbytes", String(max(1024, min(1_048_576, setup.memoryLimit / 8 / 1024)))),
        ]
        properties += KafkaClientOptions.raw(options)
        self.properties = properties
        io = BlockingQueue(label: "switchyard.kafka.target.\(setup.name)")
        let sync = KafkaTopicSync(
            options: options, topic: options.template("topic")!, keep: partitionTemplate?.constant == Array("keep".utf8),
            feeders: setup.feeders, logger: logger)
        topicSync = Mutex(sync.isNeeded ? sync : nil)
    }

    static func milliseconds(_ duration: Duration) -> Int {
        Int(duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000)
    }

    var health: ConnectorHealth { healthState.withLock { $0 } }

    func setHealth(_ health: ConnectorHealth) {
        let changed = healthState.withLock { state -> Bool in
            defer { state = health }
            return state != health
        }
        if changed, case .down(let reason) = health {
            logger.error("kafka target down", metadata: ["target": "\(name)", "reason": "\(reason)"])
        }
    }

    /// Creates the missing target topics and checks partition counts (``KafkaTopicSync``), once.
    func prepare() async throws {
        guard let sync = topicSync.withLock({ $0 }) else { return }
        let logger = self.logger
        try await io.run { try sync.run(logger: logger) }
        topicSync.withLock { $0 = nil }
    }

    func open() async throws {
        try await prepare()
        _ = try await connect()
    }

    /// The current client, creating one (and checking that the cluster answers) if needed.
    func connect() async throws -> Client {
        if let existing = client.withLock({ $0 }) { return existing }
        let properties = self.properties
        let logger = self.logger
        let label = "switchyard.kafka.target.\(name).poll"
        let made: Client = try await io.run { () throws -> Client in
            let config = RDKafkaConfig()
            do {
                try config.set(properties)
                let producer = try RDKafkaProducer(config: config, logger: logger) { [weak self] error in
                    self?.clientError(error)
                }
                if let error = producer.checkCluster(timeoutMs: 5000) {
                    throw ConnectorError.retriable("kafka brokers do not answer: \(error)")
                }
                return Client(producer: producer, label: label)
            } catch let error as KafkaError {
                throw ConnectorError.targetDown("kafka producer: \(error)")
            }
        }
        let installed = client.withLock { current -> Client in
            if let current { return current }
            current = made
            return made
        }
        if installed !== made { await io.run { made.shutdown(timeoutMs: 0) } }
        setHealth(.up)
        return installed
    }

    func clientError(_ error: KafkaError) {
        if error.code == .allBrokersDown {
            setHealth(.down("all brokers are down: \(error.message)"))
        } else if error.isFatal {
            setHealth(.down(error.description))
        } else {
            logger.warning("kafka producer error", metadata: ["target": "\(name)", "error": "\(error)"])
        }
    }

    func write(_ messages: [Message]) async throws -> WriteResult {
        try await start(messages).result()
    }

    /// Hands the batch to librdkafka in order (on `io`) and returns what waits for its delivery
    /// reports, so that the lane can start its next batch meanwhile: librdkafka keeps the order
    /// of what it was given per partition (with idempotence, across its own retries too).
    func start(_ messages: [Message]) async throws -> PendingWrite {
        let client = try await connect()
        if let fatal = client.producer.fatalError() {
            // An idempotent producer that hit a fatal error must be replaced.
            await replace(client)
            throw ConnectorError.retriable("kafka producer hit a fatal error and was replaced: \(fatal)")
        }
        let tracker = DeliveryTracker(count: messages.count)
        let rendered = messages.map(render)
        try await io.run { () throws -> Void in
            for (index, item) in rendered.enumerated() {
                guard case .success(var record) = item else {
                    if case .failure(let error) = item { tracker.report(index, error) }
                    continue
                }
                if let wanted = record.mirrorPartition {
                    // Keep the partition when the target topic has it; otherwise hash by key.
                    let count = self.partitionCount(record.topic, client.producer)
                    record.partition = count.map { wanted < $0 } == true ? wanted : nil
                }
                while true {
                    let error = client.producer.produce(
                        topic: record.topic, partition: record.partition, key: record.key, value: record.value,
                        headers: record.headers, timestamp: record.timestamp, tracker: tracker, index: index)
                    guard let error else { break }
                    if error.code == .queueFull {
                        // Backpressure: let librdkafka deliver, then try again.
                        client.producer.poll(timeoutMs: 10)
                        continue
                    }
                    tracker.report(index, error)
                    break
                }
            }
        }
        let count = messages.count
        return PendingWrite { [self] in
            await outcome(of: tracker.wait(), count: count, client: client)
        }
    }

    /// The write's result from its delivery reports' failures (by message index).
    func outcome(of failures: [Int: KafkaError], count: Int, client: Client) async -> WriteResult {
        if failures.isEmpty {
            setHealth(.up)
            return .allWritten
        }
        var result: [(index: Int, error: ConnectorError)] = []
        var fatal = false
        for index in failures.keys.sorted() {
            let error = failures[index]!
            fatal = fatal || error.isFatal
            let text = "kafka: \(error)"
            switch error.kind {
            case .retriable: result.append((index, .retriable(text)))
            case .message: result.append((index, .permanent(text)))
            case .system: result.append((index, .targetDown(text)))
            }
        }
        if fatal { await replace(client) }
        if result.count < count { setHealth(.up) }
        return WriteResult(failures: result)
    }

    struct Record: Sendable {
        var topic: String
        var partition: Int32?
        /// With `partition: mirror`: the message's own partition, kept if the topic has it.
        var mirrorPartition: Int32?
        var key: [UInt8]?
        var value: [UInt8]
        var headers: [Header]
        var timestamp: Int64
    }

    func render(_ message: Message) -> Result<Record, KafkaError> {
        let topicName = constantTopic ?? topic.renderString(message)
        if topicName.isEmpty {
            return .failure(KafkaError(.init(rawValue: -186), "the topic template rendered an empty name"))
        }
        var partitionNumber: Int32?
        var mirrorPartition: Int32?
        switch partition {
        case .hash: partitionNumber = nil
        case .keep: partitionNumber = message.partition
        case .mirror: mirrorPartition = message.partition
        case .template(let template):
            let text = template.renderString(message)
            guard let number = Int32(text), number >= 0 else {
                return .failure(KafkaError(.init(rawValue: -186), "the partition template rendered '\(text)', not a partition number"))
            }
            partitionNumber = number
        }
        var recordHeaders = keepHeaders ? message.headers : []
        for (headerName, template) in headers { recordHeaders.append(Header(name: headerName, value: template.render(message))) }
        return .success(
            Record(
                topic: topicName, partition: partitionNumber, mirrorPartition: mirrorPartition,
                key: key.map { $0.render(message) } ?? message.key,
                value: value.map { $0.render(message) } ?? message.value, headers: recordHeaders, timestamp: message.timestamp))
    }

    /// The partition count of `topic`, cached for ``partitionCountTTL``; asks the cluster (up
    /// to 5 s) when unknown. Blocks: call it on `io` only.
    func partitionCount(_ topic: String, _ producer: RDKafkaProducer) -> Int32? {
        let now = ContinuousClock.now
        if let cached = partitionCounts.withLock({ $0[topic] }), now - cached.asked < Self.partitionCountTTL {
            return cached.count
        }
        let count = producer.partitionCount(topic: topic, timeoutMs: 5000)
        if count == nil {
            logger.warning(
                "the partition count of the target topic is unknown; messages are hashed by key", metadata: ["topic": "\(topic)"])
        }
        partitionCounts.withLock { $0[topic] = (count, now) }
        return count
    }

    func replace(_ old: Client) async {
        let removed = client.withLock { current -> Bool in
            guard current === old else { return false }
            current = nil
            return true
        }
        if removed { await io.run { old.shutdown(timeoutMs: 0) } }
    }

    func close() async {
        let current = client.withLock { current in
            defer { current = nil }
            return current
        }
        guard let current else { return }
        await io.run { current.shutdown(timeoutMs: 10_000) }
    }
}
