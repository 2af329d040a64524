import CRdKafka
import Dispatch
import Logging
import Metrics
import Synchronization
import SwitchyardCore

/// One consumer's life, on the thread that owns it: poll, batch by partition, commit, rebalance.
///
/// Everything but `close()`, `start()` and `handoff` is confined to the poll thread (librdkafka
/// calls the rebalance and commit callbacks from inside `poll` on that thread).
final class KafkaConsumerSession: RDKafkaConsumerEvents, @unchecked Sendable {
    unowned let source: KafkaSource
    let context: SourceContext
    let handoff = RoundHandoff()
    let settings: KafkaSource.Settings
    let logger: Logger
    let queue: DispatchQueue
    let closeRequested = Atomic<Bool>(false)
    let finished = Mutex<(done: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    // Poll-thread state.
    private var consumer: RDKafkaConsumer?
    private var shardOf: [TopicPartition: Int32] = [:]
    private var pending: [Int32: [Message]] = [:]
    private var pendingOrder: [Int32] = []
    private var paused = false
    private var blockedSince: ContinuousClock.Instant?
    private var committed: [Int32: Int64] = [:]
    /// The offset after the last message taken from each shard: offsets only move forward.
    private var nextOffset: [Int32: Int64] = [:]
    private var closing = false
    private var stopped = false
    private var lastCommit = ContinuousClock.now
    private var lastHealthCheck = ContinuousClock.now
    private var brokersDown = false
    private let rebalances: Counter
    /// The offset of the first message taken from each shard in this assignment.
    private var firstTaken: [Int32: Int64] = [:]
    /// Where each owned partition's consumption started when nothing was taken from it yet:
    /// the group's committed offset, or the reset position without one.
    private var startPosition: [Int32: Int64] = [:]
    /// A bounded run's stop offset of each partition (empty: unbounded), and the owned
    /// partitions that reached theirs (paused; nothing at or past the stop is taken).
    private var stopOffsets: [TopicPartition: Int64] = [:]
    private var reachedStop: Set<TopicPartition> = []
    /// When a bounded run's member first got partitions: it must own them all soon after.
    private var firstAssigned: ContinuousClock.Instant?
    private var lastLagRefresh = ContinuousClock.now - .seconds(1)
    private var lastStartLookup = ContinuousClock.now - .seconds(10)
    /// What a `/metrics` scrape needs to compute the lag exactly (see ``publishLag()``),
    /// refreshed by the poll thread.
    let lagView = Mutex<[TopicPartition: LagEntry]>([:])

    struct LagEntry: Sendable {
        var shard: Int32
        /// The partition's high watermark as of the last fetch.
        var high: Int64
        /// The first offset not yet acknowledged when nothing was acknowledged in this
        /// assignment: the first taken, else where consumption starts.
        var base: Int64?
    }

    /// Bytes of the budget held for librdkafka's prefetch while the session lives.
    let reserved: Int

    init(source: KafkaSource, context: SourceContext, reserved: Int) {
        self.reserved = reserved
        self.source = source
        self.context = context
        self.settings = source.settings
        self.logger = source.logger
        self.queue = DispatchQueue(label: "switchyard.kafka.source.\(source.settings.name)")
        self.rebalances = Counter(label: "switchyard_source_rebalances_total", dimensions: [("source", source.settings.name)])
    }

    func start() {
        queue.async { self.main() }
    }

    /// Asks the thread to commit what was acknowledged, leave the group and destroy the client;
    /// returns when it did.
    func close() async {
        closeRequested.store(true, ordering: .releasing)
        handoff.space.signal()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = finished.withLock { state -> Bool in
                if state.done { return true }
                state.waiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }

    // MARK: the poll thread

    private func main() {
        let hook = ScrapeHooks.shared.add { [weak self] in self?.publishLag() }
        defer {
            ScrapeHooks.shared.remove(hook)
            for partition in lagView.withLock({ Array($0.keys) }) { Self.lagGauge(settings.name, partition).destroy() }
            lagView.withLock { $0 = [:] }
            source.release(Array(shardOf.values))
            shardOf = [:]
            consumer = nil
            context.budget.release(reserved)
            let waiters = finished.withLock { state in
                state.done = true
                defer { state.waiters = [] }
                return state.waiters
            }
            for waiter in waiters { waiter.resume() }
        }
        let config = RDKafkaConfig()
        do {
            if settings.stopAtEnd { stopOffsets = try source.stopOffsets() }
            try config.set(settings.properties)
            consumer = try RDKafkaConsumer(config: config, topics: settings.topics, logger: logger, events: self)
        } catch {
            source.setHealth(.down(error.message))
            handoff.end(.failed(error))
            return
        }
        source.setHealth(.connecting)
        logger.info("kafka consumer started", metadata: ["topics": "\(settings.topics.joined(separator: ","))"])
        while !closeRequested.load(ordering: .acquiring) {
            if let fatal = consumer?.fatalError() {
                source.setHealth(.down(fatal.description))
                handoff.end(.failed(fatal))
                return
            }
            tick()
            if context.isStopping && !stopped {
                stopped = true
                pauseAll()
                pending = [:]
                pendingOrder = []
                handoff.end(.finished)
            }
            if !stopped && !stopOffsets.isEmpty, let error = sharedGroupError() {
                source.setHealth(.down(error.message))
                handoff.end(.failed(error))
                stopped = true
            }
            if !stopped && !stopOffsets.isEmpty && reachedEveryStop() {
                stopped = true
                pauseAll()
                logger.notice("kafka source reached the end of its input: every partition is taken up to its stop offset", metadata: ["source": "\(settings.name)"])
                handoff.end(.finished)
            }
            if stopped {
                // Keep serving callbacks (commits, rebalances) until close.
                serveEvents(timeoutMs: 100, keepMessages: false)
                continue
            }
            if pendingOrder.isEmpty {
                pollRound()
            }
            guard !pendingOrder.isEmpty else { continue }
            let round = pendingOrder.compactMap { shard in pending[shard].map { Batch(shard: shard, messages: $0) } }
            if handoff.offer(round) {
                pending = [:]
                pendingOrder = []
                blockedSince = nil
                if paused { resumeAll() }
                continue
            }
            // `run` is still submitting (the byte budget or a target queue is full).
            let now = ContinuousClock.now
            if blockedSince == nil { blockedSince = now }
            if !paused && now - blockedSince! > .milliseconds(500) {
                // Stop fetching, and keep polling so that the group membership stays alive.
                pauseAll()
            }
            if paused {
                serveEvents(timeoutMs: 0, keepMessages: true)
            }
            _ = handoff.space.wait(timeout: .now() + .milliseconds(50))
        }
        finalCommitAndClose()
    }

    /// Polls up to `batchSize` messages (waiting at most 100 ms for the first) into `pending`.
    private func pollRound() {
        guard let consumer else { return }
        var count = 0
        var bytes = 0
        var timeout: Int32 = 100
        while count < settings.batchSize && bytes < settings.roundBytes {
            guard let polled = consumer.poll(timeoutMs: timeout) else { break }
            timeout = 0
            switch polled {
            case .message(let message):
                if accept(message) {
                    count += 1
                    bytes += message.value.count + (message.key?.count ?? 0) + 96
                }
            case .error(let error, let partition):
                report(error, partition)
            }
            if closeRequested.load(ordering: .relaxed) || context.isStopping { break }
        }
    }

    /// Serves rebalance and commit callbacks; messages that still arrive are kept or dropped.
    private func serveEvents(timeoutMs: Int32, keepMessages: Bool) {
        guard let consumer else { return }
        var timeout = timeoutMs
        for _ in 0..<1000 {
            guard let polled = consumer.poll(timeoutMs: timeout) else { return }
            timeout = 0
            switch polled {
            case .message(let message):
                if keepMessages { _ = accept(message) }
            case .error(let error, let partition):
                report(error, partition)
            }
        }
    }

    private func accept(_ message: Message) -> Bool {
        let partition = TopicPartition(topic: message.channel, partition: message.partition)
        guard let shard = shardOf[partition] else { return false }
        if let stop = stopOffsets[partition] {
            if message.offset >= stop {
                markReached(partition)
                return false
            }
            if message.offset + 1 >= stop { markReached(partition) }
        }
        if brokersDown { markUp() }
        // A message fetched again (after a pause, say) is already in flight: never twice, and
        // never out of order, into one shard's ledger.
        if let next = nextOffset[shard], message.offset < next { return false }
        if firstTaken[shard] == nil { firstTaken[shard] = message.offset }
        nextOffset[shard] = message.offset + 1
        if pending[shard] == nil {
            pending[shard] = []
            pendingOrder.append(shard)
        }
        pending[shard]!.append(message)
        return true
    }

    private func report(_ error: KafkaError, _ partition: TopicPartition?) {
        if error.code == .partitionEOF {
            // At the end of the partition, past its stop offset (high watermarks only grow).
            if let partition, stopOffsets[partition] != nil, shardOf[partition] != nil { markReached(partition) }
            return
        }
        logger.warning("kafka consumer error", metadata: ["error": "\(error)", "partition": "\(partition.map(\.description) ?? "-")"])
    }

    /// A bounded run's partition that holds nothing more to take: paused for good.
    private func markReached(_ partition: TopicPartition) {
        guard reachedStop.insert(partition).inserted else { return }
        consumer?.pause([partition])
    }

    /// A bounded run needs its group to itself: another member (a bridge still running) holds
    /// partitions that this one would wait for forever. Checked once the group had three
    /// session timeouts (at least 10 s) since the first assignment to settle.
    private func sharedGroupError() -> KafkaError? {
        guard let firstAssigned else { return nil }
        let session = settings.properties.last { $0.0 == "session.timeout.ms" }.flatMap { Int($0.1) } ?? 45_000
        guard ContinuousClock.now - firstAssigned > max(.seconds(10), .milliseconds(3 * session)) else { return nil }
        let owned = stopOffsets.keys.filter { shardOf[$0] != nil }.count
        guard owned < stopOffsets.count else { return nil }
        let group = settings.properties.last { $0.0 == "group.id" }?.1 ?? "?"
        return KafkaError(RD_KAFKA_RESP_ERR__STATE, "a bounded run needs group '\(group)' to itself, but this member owns \(owned) of \(stopOffsets.count) partitions: another member (a bridge still running?) holds the rest; stop it and run again", fatal: true)
    }

    /// Whether a bounded run is done: this member owns every partition of its topics, each
    /// reached its stop offset (or started at it), and everything taken was handed over.
    private func reachedEveryStop() -> Bool {
        guard pendingOrder.isEmpty, handoff.isEmpty else { return false }
        for (partition, stop) in stopOffsets {
            guard let shard = shardOf[partition] else { return false }
            if reachedStop.contains(partition) { continue }
            guard let position = nextOffset[shard] ?? startPosition[shard], position >= stop else { return false }
        }
        return true
    }

    private func pauseAll() {
        guard let consumer else { return }
        consumer.pause(Array(shardOf.keys))
        paused = true
    }

    private func resumeAll() {
        guard let consumer else { return }
        // Continue after what was taken, not from what librdkafka may fall back to.
        let resumed = shardOf.filter { !reachedStop.contains($0.key) }
        consumer.seek(resumed.compactMap { partition, shard in nextOffset[shard].map { (partition, $0) } })
        consumer.resume(Array(resumed.keys))
        paused = false
    }

    /// Periodic work: commit, lag gauges, health probe while the brokers are down.
    private func tick() {
        let now = ContinuousClock.now
        if now - lastCommit >= settings.commitInterval {
            lastCommit = now
            commit(shards: nil, async: true)
        }
        if now - lastLagRefresh >= .milliseconds(200) {
            lastLagRefresh = now
            refreshLag()
        }
        if brokersDown && now - lastHealthCheck >= .seconds(2) {
            lastHealthCheck = now
            if consumer?.isReachable(timeoutMs: 1000) == true { markUp() }
        }
    }

    private func markUp() {
        brokersDown = false
        source.setHealth(.up)
    }

    /// Commits the acknowledged watermark (+1) of `shards` (all owned when nil) that moved.
    private func commit(shards: [Int32]?, async: Bool) {
        guard let consumer else { return }
        var offsets: [(TopicPartition, Int64)] = []
        var issued: [(Int32, Int64)] = []
        for (shard, (partition, through)) in source.watermarks(shards) {
            let next = through + 1
            if let done = committed[shard], done >= next { continue }
            offsets.append((partition, next))
            issued.append((shard, next))
        }
        guard !offsets.isEmpty else { return }
        do {
            try consumer.commit(offsets, async: async)
            for (shard, next) in issued { committed[shard] = next }
            Self.recordCommitted(source: settings.name, offsets)
        } catch {
            logger.warning("kafka commit failed; retrying at the next interval", metadata: ["error": "\(error)"])
        }
    }

    static func recordCommitted(source: String, _ offsets: [(TopicPartition, Int64)]) {
        for (partition, offset) in offsets {
            Gauge(label: "switchyard_source_committed_offset", dimensions: [("source", source), ("topic", partition.topic), ("partition", String(partition.partition))]).record(offset)
        }
    }

    static func lagGauge(_ source: String, _ partition: TopicPartition) -> Gauge {
        Gauge(label: "switchyard_source_lag_messages", dimensions: [("source", source), ("topic", partition.topic), ("partition", String(partition.partition))])
    }

    /// Refreshes, on the poll thread, what the lag is computed from: each owned partition's high
    /// watermark (cached by librdkafka from fetches: no request) and where consumption started.
    /// Also the backlog not yet fetched, for the bridge lag.
    private func refreshLag() {
        guard let consumer else { return }
        let latest = settings.properties.last { $0.0 == "auto.offset.reset" }?.1 == "latest"
        var missingStart: [TopicPartition] = []
        var view: [TopicPartition: LagEntry] = [:]
        var backlog: Int64 = 0
        for (partition, shard) in shardOf {
            guard let marks = consumer.watermarks(partition) else { continue }
            let base = firstTaken[shard] ?? committed[shard] ?? startPosition[shard]
            if base == nil { missingStart.append(partition) }
            view[partition] = LagEntry(shard: shard, high: marks.high, base: base)
            // Not fetched yet: from the next offset to take (or the start) to the end.
            backlog += max(0, marks.high - (nextOffset[shard] ?? base ?? marks.high))
        }
        let gone = lagView.withLock { current -> [TopicPartition] in
            let gone = current.keys.filter { view[$0] == nil }
            current = view
            return gone
        }
        for partition in gone { Self.lagGauge(settings.name, partition).destroy() }
        source.backlogMessages.store(Int(backlog), ordering: .relaxed)
        // A partition nothing was taken from yet: ask the group's committed offset (a request,
        // on this thread, at most every 5 s). Without one, consumption starts at the reset
        // position.
        let now = ContinuousClock.now
        guard !missingStart.isEmpty, now - lastStartLookup >= .seconds(5) else { return }
        lastStartLookup = now
        guard let offsets = try? consumer.committed(missingStart, timeoutMs: 2000) else { return }
        for partition in missingStart {
            guard let shard = shardOf[partition], let marks = consumer.watermarks(partition) else { continue }
            if let offset = offsets[partition], offset >= 0 {
                startPosition[shard] = offset
            } else {
                startPosition[shard] = latest ? marks.high : marks.low
            }
        }
    }

    /// Records the lag of every owned partition: its high watermark minus the first offset not
    /// yet acknowledged (what the group's committed offset will be once the acknowledged prefix
    /// is committed). Runs at each `/metrics` scrape, so a consumer that has acknowledged
    /// everything reports 0, not the lag as of its last commit. A partition whose position is
    /// not known yet has no value rather than a made-up one.
    func publishLag() {
        let acknowledged = source.watermarks()
        let entries = lagView.withLock { $0 }
        for (partition, entry) in entries {
            guard let position = acknowledged[entry.shard].map({ $0.1 + 1 }) ?? entry.base else { continue }
            Self.lagGauge(settings.name, partition).record(max(0, entry.high - position))
        }
    }

    private func finalCommitAndClose() {
        closing = true
        commit(shards: nil, async: false)
        consumer?.close()
        logger.info("kafka consumer closed", metadata: ["source": "\(settings.name)"])
    }

    // MARK: RDKafkaConsumerEvents (on the poll thread, inside poll or close)

    func assigned(_ partitions: [TopicPartition]) {
        rebalances.increment()
        for partition in partitions where shardOf[partition] == nil {
            shardOf[partition] = source.assign(partition)
        }
        if firstAssigned == nil && !partitions.isEmpty { firstAssigned = .now }
        logger.info("kafka partitions assigned", metadata: ["partitions": "\(partitions.map(\.description).joined(separator: ","))"])
        markUp()
        if paused, let consumer {
            // Newly assigned partitions start paused too; the assignment is applied after this
            // returns, so pause again on the next loop turn.
            consumer.pause(partitions)
        }
    }

    func revoked(_ partitions: [TopicPartition], lost: Bool) {
        rebalances.increment()
        let shards = partitions.compactMap { shardOf[$0] }
        let shardSet = Set(shards)
        handoff.remove(shards: shardSet)
        for shard in shards { pending[shard] = nil }
        pendingOrder.removeAll { shardSet.contains($0) }
        if !lost {
            if !closing && !shards.isEmpty { drain(shards) }
            commit(shards: shards, async: false)
        }
        source.release(shards)
        for partition in partitions {
            shardOf[partition] = nil
            reachedStop.remove(partition)
        }
        for shard in shards {
            committed[shard] = nil
            nextOffset[shard] = nil
            firstTaken[shard] = nil
            startPosition[shard] = nil
        }
        logger.info(lost ? "kafka partitions lost (not committed)" : "kafka partitions revoked", metadata: ["partitions": "\(partitions.map(\.description).joined(separator: ","))"])
    }

    /// Waits (blocking this thread, never the cooperative pool) until the in-flight messages of
    /// `shards` are acknowledged, at most the drain timeout.
    private func drain(_ shards: [Int32]) {
        let done = DispatchSemaphore(value: 0)
        let context = self.context
        let timeout = settings.drainTimeout
        let drained = DrainOutcome()
        Task {
            await withTaskGroup(of: Bool.self) { group in
                for shard in shards {
                    group.addTask { await context.drain(shard: shard, timeout: timeout) }
                }
                for await ok in group where !ok { drained.failed.store(true, ordering: .relaxed) }
            }
            done.signal()
        }
        done.wait()
        if drained.failed.load(ordering: .relaxed) {
            logger.warning("revoked partitions did not drain in time; their unacknowledged messages will be delivered again", metadata: ["drainTimeout": "\(timeout)"])
        }
    }

    func commitCompleted(_ entries: [(partition: TopicPartition, offset: Int64, error: KafkaError?)], error: KafkaError?) {
        if let error, error.code != .noOffset {
            logger.warning("kafka commit failed; retrying at the next interval", metadata: ["error": "\(error)"])
        }
        for entry in entries {
            guard let failure = entry.error ?? error, failure.code != .noOffset, let shard = shardOf[entry.partition] else { continue }
            _ = failure
            // Commit again at the next interval.
            committed[shard] = nil
        }
    }

    func clientError(_ error: KafkaError) {
        if error.code == .allBrokersDown {
            brokersDown = true
            lastHealthCheck = .now
            source.setHealth(.down("all brokers are down: \(error.message)"))
        } else if error.isFatal {
            source.setHealth(.down(error.description))
        } else {
            logger.warning("kafka client error", metadata: ["error": "\(error)"])
        }
    }
}

/// Whether some shard of a drain timed out.
final class DrainOutcome: Sendable {
    let failed = Atomic<Bool>(false)
}
