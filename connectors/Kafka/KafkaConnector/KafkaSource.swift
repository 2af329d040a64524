import Dispatch
import Logging
import Metrics
import Synchronization
import SwitchyardCore

/// The `kafka` source: a consumer-group member that submits one batch per partition and poll
/// round, and commits only the contiguous acknowledged prefix of each partition it owns.
///
/// Threads: librdkafka is polled on a dispatch thread the source owns (``KafkaConsumerSession``);
/// `run` only moves rounds of batches from that thread to `SourceContext.submit` and never calls
/// librdkafka. Rebalance callbacks run on the poll thread, which blocks there while a revoked
/// partition drains (an async task waits on the ledger; the thread waits on a semaphore).
///
/// Shards: every assignment of a partition gets a fresh shard number, so acknowledgements for a
/// partition that was revoked (even if it came back since) are recognised and ignored.
final class KafkaSource: Source {
    static let kind = SourceKind(
        kind: "kafka",
        summary: "consumes Kafka topics as a consumer-group member (librdkafka); commits the acknowledged prefix of each partition",
        options: ObjectSchema(
            doc: "Consumes Kafka topics in a consumer group.",
            KafkaClientOptions.fields + [
                OptionField(
                    "topics", .list(.string), required: true,
                    doc: "topics to subscribe to; a name starting with ^ is a regular expression (e.g. ^orders\\..*)"),
                OptionField("group", .string, required: true, doc: "consumer group (group.id); offsets are committed for this group"),
                OptionField(
                    "startOffset", .choice(["earliest", "latest"]), default: "earliest",
                    doc: "where to start in a partition the group has no committed offset for (auto.offset.reset)"),
                OptionField(
                    "commitInterval", .duration, default: "1s",
                    doc: "how often acknowledged offsets are committed (asynchronously); they are also committed on revoke and on shutdown"),
                OptionField(
                    "drainTimeout", .duration, default: "20s",
                    doc:
                        "on a revoke, how long the partition's in-flight messages may take to be acknowledged before its watermark is committed and it is let go"
                ),
                OptionField(
                    "batchSize", .int(min: 1, max: 100_000), default: "1000",
                    doc: "most messages taken from librdkafka per poll round (split into one batch per partition)"),
                OptionField(
                    "prefetch", .size,
                    doc:
                        "librdkafka's prefetch queue in payload bytes (queued.max.messages.kbytes), charged to the byte budget; default: a twelfth of delivery.memoryLimit, between 64KiB and 64MiB"
                ),
                OptionField(
                    "prefetchMessages", .int(min: 1000, max: 10_000_000),
                    doc:
                        "librdkafka's prefetch queue in messages (queued.min.messages), charged to the byte budget at 256 bytes each (librdkafka's own per-message memory); default: prefetch / 128. The reservation, prefetch + 256 x prefetchMessages, is at most a quarter of delivery.memoryLimit"
                ),
            ]),
        validate: { options in
            var issues: [ConfigIssue] = []
            let topics = options.strings("topics") ?? []
            if topics.isEmpty { issues.append(options.issue("topics", "needs at least one topic")) }
            for (index, topic) in topics.enumerated() where topic.trimmingSpaces.isEmpty {
                issues.append(
                    ConfigIssue(
                        path: "\(options.path(of: "topics"))[\(index)]", line: options.line(of: "topics"), message: "must not be empty"))
            }
            if options.string("group")?.isEmpty == true { issues.append(options.issue("group", "must not be empty")) }
            if let interval = options.duration("commitInterval"), interval <= .zero {
                issues.append(options.issue("commitInterval", "must be greater than 0"))
            }
            issues += KafkaClientOptions.validate(options, reserved: reserved, derived: [("group.id", options.string("group") ?? "x")])
            return issues
        },
        reportsLag: true,
        stopsAtEnd: true,
        make: { setup in try KafkaSource(setup) }
    )

    /// librdkafka properties the source sets itself.
    /// librdkafka's memory per queued message beyond its payload (an op and a message
    /// struct; about 250 bytes measured with librdkafka 2.0.2), charged to the budget.
    static let queuedMessageOverhead = 256

    static let reserved: [String: String] = [
        "bootstrap.servers": "use brokers", "metadata.broker.list": "use brokers", "group.id": "use group",
        "client.id": "use clientId", "auto.offset.reset": "use startOffset",
        "enable.auto.commit": "offsets are committed from acknowledgements only",
        "enable.auto.offset.store": "offsets are committed from acknowledgements only",
        "queued.max.messages.kbytes": "use prefetch (it is charged to the byte budget)",
        "queued.min.messages": "use prefetchMessages (it is charged to the byte budget)",
    ]

    struct Settings: Sendable {
        var name: String
        var topics: [String]
        var properties: [(String, String)]
        var commitInterval: Duration
        var drainTimeout: Duration
        var batchSize: Int
        var roundBytes: Int
        var prefetchBytes: Int
        /// A bounded run: stop each partition at its high watermark as of the start.
        var stopAtEnd: Bool
        /// The cluster connection alone (no group settings), for the stop offsets' lookup.
        var clientProperties: [(String, String)]
    }

    /// Which partitions this member owns (by shard) and what was acknowledged for them.
    struct Ownership {
        var nextShard: Int32 = 0
        var partitionOf: [Int32: TopicPartition] = [:]
        var acknowledged: [Int32: Int64] = [:]
    }

    let settings: Settings
    let logger: Logger
    let ownership = Mutex(Ownership())
    let healthState = Mutex<ConnectorHealth>(.connecting)
    let session = Mutex<KafkaConsumerSession?>(nil)
    /// Messages of the owned partitions not fetched yet, updated every commit interval.
    let backlogMessages = Atomic<Int>(0)
    /// In a bounded run, each partition's end when the source started (its first session):
    /// offsets at or past it are not taken.
    let stops = Mutex<[TopicPartition: Int64]?>(nil)

    var backlog: Int? { backlogMessages.load(ordering: .relaxed) }

    init(_ setup: ConnectorSetup) throws {
        let options = setup.options
        if setup.stopAtEnd, let pattern = (options.strings("topics") ?? []).first(where: { $0.hasPrefix("^") }) {
            throw ConnectorError.targetDown(
                "\(options.path(of: "topics")): '\(pattern)' is a pattern; a source that stops at the end of its input needs topics by name"
            )
        }
        let prefetch = options.size("prefetch") ?? min(64 << 20, max(64 << 10, setup.memoryLimit / 12))
        // librdkafka 2.0 stops fetching a partition for a whole second (rd_kafka_max_block_ms)
        // once the consumer queue holds queued.min.messages (default 100,000, counted over all
        // partitions of the group consumer's one queue), which caps throughput near that many
        // messages per second: the count bound follows the byte bound instead.
        let prefetchMessages = options.int("prefetchMessages") ?? max(1000, prefetch / 128)
        var properties = KafkaClientOptions.properties(options).filter { property in
            !KafkaClientOptions.raw(options).contains { $0.0 == property.0 }
        }
        properties += [
            ("group.id", options.string("group") ?? setup.name),
            ("auto.offset.reset", options.string("startOffset") ?? "earliest"),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("queued.max.messages.kbytes", String(max(1, prefetch / 1024))),
            ("queued.min.messages", String(prefetchMessages)),
            // One fetch response must not overshoot the prefetch bound by much.
            ("fetch.max.bytes", String(max(1 << 20, min(prefetch / 2, 50 << 20)))),
        ]
        // A bounded run learns that a partition holds nothing more from its end-of-partition
        // event (the last offsets before the stop may be gone: compaction, transaction markers).
        if setup.stopAtEnd { properties.append(("enable.partition.eof", "true")) }
        properties += KafkaClientOptions.raw(options)
        settings = Settings(
            name: setup.name,
            topics: options.strings("topics") ?? [],
            properties: properties,
            commitInterval: options.duration("commitInterval") ?? .seconds(1),
            drainTimeout: options.duration("drainTimeout") ?? .seconds(20),
            batchSize: options.int("batchSize") ?? 1000,
            roundBytes: max(64 << 10, min(4 << 20, setup.memoryLimit / 16)),
            // Never reserve so much that a batch could not fit beside the reservation.
            prefetchBytes: min(prefetch + prefetchMessages * KafkaSource.queuedMessageOverhead, max(1, setup.memoryLimit / 4)),
            stopAtEnd: setup.stopAtEnd,
            clientProperties: KafkaClientOptions.properties(options))
        logger = setup.logger
    }

    var health: ConnectorHealth { healthState.withLock { $0 } }

    /// A member that joined and holds no partition works on nothing: the group has more members
    /// than the topics have partitions (docs/scaling.md).
    var idle: Bool { health == .up && ownership.withLock { $0.partitionOf.isEmpty } }

    var notes: [String] {
        guard idle else { return [] }
        return [
            "source \(settings.name) holds no partition: the group has at least as many busy members as the topics have partitions; this pod is idle"
        ]
    }

    func run(context: SourceContext) async throws {
        let previous = session.withLock { $0 }
        if let previous { await previous.close() }
        // librdkafka's prefetch counts against the process byte budget (ARCHITECTURE.md 3.6).
        let reserved = min(settings.prefetchBytes, context.budget.limit / 4)
        try await context.budget.acquire(reserved)
        let current = KafkaConsumerSession(source: self, context: context, reserved: reserved)
        session.withLock { $0 = current }
        current.start()
        while true {
            switch await current.handoff.next() {
            case .round(let batches):
                for batch in batches where owns(batch.shard) {
                    try await context.submit(batch)
                }
            case .finished:
                return
            case .failed(let error):
                await current.close()
                throw error
            }
        }
    }

    func owns(_ shard: Int32) -> Bool {
        ownership.withLock { $0.partitionOf[shard] != nil }
    }

    func acknowledge(shard: Int32, through offset: Int64, count: Int) {
        ownership.withLock { state in
            // A partition no longer owned is never committed for.
            guard state.partitionOf[shard] != nil else { return }
            if let previous = state.acknowledged[shard], previous >= offset { return }
            state.acknowledged[shard] = offset
        }
    }

    func close() async {
        let current = session.withLock { session in
            defer { session = nil }
            return session
        }
        await current?.close()
    }

    // MARK: ownership (called on the poll thread)

    func assign(_ partition: TopicPartition) -> Int32 {
        ownership.withLock { state in
            let shard = state.nextShard
            state.nextShard &+= 1
            state.partitionOf[shard] = partition
            return shard
        }
    }

    /// Forgets `shards`: from now on their acknowledgements are ignored. Returns the watermark
    /// each had (the last acknowledged offset).
    @discardableResult
    func release(_ shards: [Int32]) -> [Int32: Int64] {
        ownership.withLock { state in
            var watermarks: [Int32: Int64] = [:]
            for shard in shards {
                state.partitionOf[shard] = nil
                if let offset = state.acknowledged.removeValue(forKey: shard) { watermarks[shard] = offset }
            }
            return watermarks
        }
    }

    /// The last acknowledged offset of each owned shard.
    func watermarks(_ shards: [Int32]? = nil) -> [Int32: (TopicPartition, Int64)] {
        ownership.withLock { state in
            var result: [Int32: (TopicPartition, Int64)] = [:]
            for (shard, offset) in state.acknowledged {
                guard let partition = state.partitionOf[shard], shards?.contains(shard) ?? true else { continue }
                result[shard] = (partition, offset)
            }
            return result
        }
    }

    /// The stop offsets of a bounded run: noted once, when the first session starts, as each
    /// partition's high watermark then (asked of its leader). Blocking: on the poll thread.
    func stopOffsets() throws(KafkaError) -> [TopicPartition: Int64] {
        if let known = stops.withLock({ $0 }) { return known }
        let inspector = try RDKafkaInspector(properties: settings.clientProperties, group: "switchyard-stop-offsets", logger: logger)
        var found: [TopicPartition: Int64] = [:]
        for topic in settings.topics {
            let count = try inspector.partitionCount(topic: topic)
            for partition in 0..<count {
                found[TopicPartition(topic: topic, partition: partition)] = try inspector.watermarks(topic: topic, partition: partition).end
            }
        }
        logger.notice(
            "kafka source stops at the end of its input",
            metadata: [
                "source": "\(settings.name)",
                "stopOffsets":
                    "\(found.sorted { ($0.key.topic, $0.key.partition) < ($1.key.topic, $1.key.partition) }.map { "\($0.key)=\($0.value)" }.joined(separator: ","))",
            ])
        stops.withLock { $0 = found }
        return found
    }

    func setHealth(_ health: ConnectorHealth) {
        let changed = healthState.withLock { state -> Bool in
            defer { state = health }
            return state != health
        }
        if changed {
            switch health {
            case .up: logger.notice("kafka source connected", metadata: ["source": "\(settings.name)"])
            case .connecting: logger.notice("kafka source connecting", metadata: ["source": "\(settings.name)"])
            case .down(let reason): logger.error("kafka source down", metadata: ["source": "\(settings.name)", "reason": "\(reason)"])
            }
        }
    }
}

/// Hands rounds of batches from the poll thread to `run`: one round waits here while `run`
/// submits the previous one.
final class RoundHandoff: Sendable {
    enum Step: Sendable {
        case round([Batch])
        case finished
        case failed(KafkaError)
    }

    struct State {
        var round: [Batch]?
        var end: Step?
        var waiter: CheckedContinuation<Step, Never>?
    }

    let state = Mutex(State())
    /// Signalled when `run` took a round, so the poll thread may offer the next.
    let space = DispatchSemaphore(value: 0)

    /// Places a round unless one is still waiting; returns whether it was taken.
    func offer(_ round: [Batch]) -> Bool {
        let (accepted, waiter) = state.withLock { state -> (Bool, CheckedContinuation<Step, Never>?) in
            guard state.round == nil, state.end == nil else { return (state.end != nil, nil) }
            if let waiter = state.waiter {
                state.waiter = nil
                return (true, waiter)
            }
            state.round = round
            return (true, nil)
        }
        waiter?.resume(returning: .round(round))
        return accepted
    }

    /// Drops waiting batches of `shards` (revoked partitions).
    func remove(shards: Set<Int32>) {
        state.withLock { state in
            guard let round = state.round else { return }
            let kept = round.filter { !shards.contains($0.shard) }
            state.round = kept.isEmpty ? nil : kept
        }
    }

    /// Whether no round waits for `run`.
    var isEmpty: Bool { state.withLock { $0.round == nil } }

    func end(_ step: Step) {
        let waiter = state.withLock { state -> CheckedContinuation<Step, Never>? in
            guard state.end == nil else { return nil }
            state.end = step
            state.round = nil
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: step)
    }

    func next() async -> Step {
        let step = await withCheckedContinuation { (continuation: CheckedContinuation<Step, Never>) in
            let ready = state.withLock { state -> Step? in
                if let round = state.round {
                    state.round = nil
                    return .round(round)
                }
                if let end = state.end { return end }
                state.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
        space.signal()
        return step
    }
}
