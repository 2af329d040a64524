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
    /// The delivery decisions: fed events on this thread; its actions are performed here.
    private var machine: KafkaConsumerStateMachine
    private let rebalances: Counter
    /// What a `/metrics` scrape needs to compute the lag exactly (see ``publishLag()``),
    /// refreshed by the poll thread.
    let lagView = Mutex<[TopicPartition: KafkaConsumerStateMachine.LagEntry]>([:])

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
        self.machine = KafkaConsumerStateMachine(.init(source.settings), now: .now)
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
            perform(machine.releaseAll())
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
            if settings.stopAtEnd { machine.bound(by: try source.stopOffsets()) }
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
            perform(machine.tick(now: .now))
            if context.isStopping { perform(machine.stopRequested()) }
            perform(machine.checkBoundedRun(now: .now, handoffIsEmpty: handoff.isEmpty))
            if machine.isStopped {
                // Keep serving callbacks (commits, rebalances) until close.
                serveEvents(timeoutMs: 100, keepMessages: false)
                continue
            }
            if !machine.hasPending {
                pollRound()
            }
            guard let round = machine.roundToHandOver else { continue }
            if handoff.offer(round) {
                perform(machine.roundAccepted())
                continue
            }
            // `run` is still submitting (the byte budget or a target queue is full).
            perform(machine.roundBlocked(now: .now))
            if machine.isPaused {
                serveEvents(timeoutMs: 0, keepMessages: true)
            }
            _ = handoff.space.wait(timeout: .now() + .milliseconds(50))
        }
        finalCommitAndClose()
    }

    /// Performs what the state machine decided, in order.
    private func perform(_ actions: [KafkaConsumerStateMachine.Action]) {
        for action in actions {
            switch action {
            case .pause(let partitions):
                consumer?.pause(partitions)
            case .resume(let partitions, let seek):
                consumer?.seek(seek.map { ($0.partition, $0.offset) })
                consumer?.resume(partitions)
            case .commit(let shards, let sync):
                commit(shards: shards, async: !sync)
            case .drainThenCommit(let shards):
                drain(shards)
                commit(shards: shards, async: false)
            case .withdraw(let shards):
                handoff.remove(shards: shards)
            case .release(let shards):
                source.release(shards)
            case .refreshLag:
                refreshLag()
            case .probeBrokers:
                if consumer?.isReachable(timeoutMs: 1000) == true { perform(machine.brokersUp()) }
            case .setHealth(let health):
                source.setHealth(health)
            case .end(.stopped):
                handoff.end(.finished)
            case .end(.reachedEveryStop):
                logger.notice(
                    "kafka source reached the end of its input: every partition is taken up to its stop offset",
                    metadata: ["source": "\(settings.name)"])
                handoff.end(.finished)
            case .end(.failed(let error)):
                handoff.end(.failed(error))
            }
        }
    }

    /// Polls up to `batchSize` messages (waiting at most 100 ms for the first) into the pending
    /// round.
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
        let (taken, actions) = machine.fetched(message)
        perform(actions)
        return taken
    }

    private func report(_ error: KafkaError, _ partition: TopicPartition?) {
        if error.code == .partitionEOF {
            if let partition { perform(machine.partitionEnded(partition)) }
            return
        }
        logger.warning("kafka consumer error", metadata: ["error": "\(error)", "partition": "\(partition.map(\.description) ?? "-")"])
    }

    /// Commits the acknowledged watermark (+1) of `shards` (all owned when nil) that moved.
    private func commit(shards: [Int32]?, async: Bool) {
        guard let consumer else { return }
        let commits = machine.commits(acknowledged: source.watermarks(shards))
        guard !commits.isEmpty else { return }
        let offsets = commits.map { ($0.partition, $0.offset) }
        do {
            try consumer.commit(offsets, async: async)
            machine.commitSent(commits)
            Self.recordCommitted(source: settings.name, offsets)
        } catch {
            logger.warning("kafka commit failed; retrying at the next interval", metadata: ["error": "\(error)"])
        }
    }

    static func recordCommitted(source: String, _ offsets: [(TopicPartition, Int64)]) {
        for (partition, offset) in offsets {
            Gauge(
                label: "switchyard_source_committed_offset",
                dimensions: [("source", source), ("topic", partition.topic), ("partition", String(partition.partition))]
            ).record(offset)
        }
    }

    static func lagGauge(_ source: String, _ partition: TopicPartition) -> Gauge {
        Gauge(
            label: "switchyard_source_lag_messages",
            dimensions: [("source", source), ("topic", partition.topic), ("partition", String(partition.partition))])
    }

    /// Refreshes, on the poll thread, what the lag is computed from: each owned partition's high
    /// watermark (cached by librdkafka from fetches: no request) and where consumption started.
    /// Also the backlog not yet fetched, for the bridge lag.
    private func refreshLag() {
        guard let consumer else { return }
        var high: [TopicPartition: Int64] = [:]
        for partition in machine.ownedPartitions {
            if let marks = consumer.watermarks(partition) { high[partition] = marks.high }
        }
        let refresh = machine.refreshLag(high: high, now: .now)
        let gone = lagView.withLock { current -> [TopicPartition] in
            let gone = current.keys.filter { refresh.view[$0] == nil }
            current = refresh.view
            return gone
        }
        for partition in gone { Self.lagGauge(settings.name, partition).destroy() }
        source.backlogMessages.store(Int(refresh.backlog), ordering: .relaxed)
        // A partition nothing was taken from yet: ask the group's committed offset (a request,
        // on this thread, at most every 5 s). Without one, consumption starts at the reset
        // position.
        guard !refresh.lookUpStart.isEmpty, let offsets = try? consumer.committed(refresh.lookUpStart, timeoutMs: 2000) else { return }
        var watermarks: [TopicPartition: (low: Int64, high: Int64)] = [:]
        for partition in refresh.lookUpStart {
            watermarks[partition] = consumer.watermarks(partition)
        }
        machine.startsFound(committed: offsets, watermarks: watermarks)
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
        perform(machine.close())
        consumer?.close()
        logger.info("kafka consumer closed", metadata: ["source": "\(settings.name)"])
    }

    // MARK: RDKafkaConsumerEvents (on the poll thread, inside poll or close)

    func assigned(_ partitions: [TopicPartition]) {
        rebalances.increment()
        var shards: [TopicPartition: Int32] = [:]
        for partition in machine.unowned(partitions) { shards[partition] = source.assign(partition) }
        let actions = machine.assigned(partitions, shards: shards, now: .now)
        logger.info("kafka partitions assigned", metadata: ["partitions": "\(partitions.map(\.description).joined(separator: ","))"])
        perform(actions)
    }

    func revoked(_ partitions: [TopicPartition], lost: Bool) {
        rebalances.increment()
        perform(machine.revoking(partitions, lost: lost))
        perform(machine.revoked(partitions))
        logger.info(
            lost ? "kafka partitions lost (not committed)" : "kafka partitions revoked",
            metadata: ["partitions": "\(partitions.map(\.description).joined(separator: ","))"])
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
            logger.warning(
                "revoked partitions did not drain in time; their unacknowledged messages will be delivered again",
                metadata: ["drainTimeout": "\(timeout)"])
        }
    }

    func commitCompleted(_ entries: [(partition: TopicPartition, offset: Int64, error: KafkaError?)], error: KafkaError?) {
        if let error, error.code != .noOffset {
            logger.warning("kafka commit failed; retrying at the next interval", metadata: ["error": "\(error)"])
        }
        machine.commitCompleted(entries, error: error)
    }

    func clientError(_ error: KafkaError) {
        if error.code == .allBrokersDown {
            perform(machine.brokersDown(error.message, now: .now))
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
