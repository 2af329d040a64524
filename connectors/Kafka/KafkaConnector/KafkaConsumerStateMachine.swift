import SwitchyardCore

/// The delivery decisions of one consumer session, as a value that the poll thread drives.
///
/// Events go in (partitions assigned and revoked, messages fetched, partition ends, rounds
/// taken or blocked by the handoff, time passing, acknowledged watermarks at commit time, commit
/// results, broker trouble, stop, close); the actions to perform come out (pause, resume with a
/// seek, commit, drain then commit, withdraw from the handoff, end, set the health, release
/// shards). It calls nothing: no librdkafka, no clock (`now` comes in), no logging, nothing
/// async. ``KafkaConsumerSession`` owns the client and performs what it returns, in order.
///
/// The promises it keeps:
/// - Offsets only move forward per shard: a message fetched again (after a pause, say) is
///   already in flight and is dropped, never taken twice nor out of order.
/// - A round blocked by the handoff for longer than ``Configuration/pauseAfter`` pauses every
///   owned partition (the group membership stays alive); once a round is taken they resume,
///   seeking to the next offset to take. Partitions assigned while paused start paused.
/// - A revoke drops the pending messages of its shards; unless the partitions are lost it
///   drains them (not while closing) and commits synchronously. Lost partitions are never
///   committed.
/// - A commit sends only offsets that moved past what was committed; an entry whose commit
///   failed forgets its committed mark, so the next interval sends it again.
/// - A bounded run takes nothing at or past a partition's stop offset, fails when another
///   member holds some of its partitions once the group settled, and finishes when it owns
///   every partition and each reached its stop with everything handed over.
struct KafkaConsumerStateMachine: Sendable {
    struct Configuration: Sendable {
        var commitInterval: Duration
        /// How long a round may wait for the handoff before fetching pauses.
        var pauseAfter: Duration = .milliseconds(500)
        var lagRefreshInterval: Duration = .milliseconds(200)
        /// How often the brokers are probed while they are down.
        var brokerProbeInterval: Duration = .seconds(2)
        /// How often the start of partitions nothing was taken from is asked for.
        var startLookupInterval: Duration = .seconds(5)
        /// How long a bounded run's group may settle after the first assignment before a member
        /// that does not own every partition fails: three session timeouts, at least 10 s.
        var settleTime: Duration
        /// The consumer group (for messages).
        var group: String
        /// Whether a partition without a committed offset starts at its end (`auto.offset.reset`
        /// `latest`) rather than its beginning.
        var startsAtLatest: Bool

        init(commitInterval: Duration, sessionTimeout: Duration = .seconds(45), group: String = "?", startsAtLatest: Bool = false) {
            self.commitInterval = commitInterval
            self.settleTime = max(.seconds(10), sessionTimeout * 3)
            self.group = group
            self.startsAtLatest = startsAtLatest
        }

        init(_ settings: KafkaSource.Settings) {
            let property = { (name: String) in settings.properties.last { $0.0 == name }?.1 }
            self.init(
                commitInterval: settings.commitInterval,
                sessionTimeout: .milliseconds(property("session.timeout.ms").flatMap { Int($0) } ?? 45_000),
                group: property("group.id") ?? "?",
                startsAtLatest: property("auto.offset.reset") == "latest")
        }
    }

    /// Where a partition's fetching continues.
    struct Seek: Hashable, Sendable {
        var partition: TopicPartition
        var offset: Int64
    }

    /// An offset to commit: the one after a shard's acknowledged watermark.
    struct Commit: Hashable, Sendable {
        var shard: Int32
        var partition: TopicPartition
        var offset: Int64
    }

    /// How the session's rounds end.
    enum End: Sendable {
        /// The context is stopping.
        case stopped
        /// A bounded run took every partition up to its stop offset.
        case reachedEveryStop
        case failed(KafkaError)
    }

    enum Action: Sendable {
        /// Stop fetching these partitions (they stay assigned).
        case pause([TopicPartition])
        /// Move the fetch positions to the next offsets to take, then fetch these partitions again.
        case resume([TopicPartition], seek: [Seek])
        /// Read the acknowledged watermarks of `shards` (every owned one when nil), commit those
        /// that moved (``commits(acknowledged:)``) and report what was sent (``commitSent(_:)``).
        case commit(shards: [Int32]?, sync: Bool)
        /// Wait until the in-flight messages of `shards` are acknowledged (at most the drain
        /// timeout), then commit them as `.commit(shards:sync: true)`.
        case drainThenCommit(shards: [Int32])
        /// Drop the batches of `shards` that wait in the handoff.
        case withdraw(shards: Set<Int32>)
        /// Forget `shards` in the source's ownership: their acknowledgements are ignored.
        case release(shards: [Int32])
        /// Refresh the lag inputs: high watermarks into ``refreshLag(high:now:)``.
        case refreshLag
        /// Ask whether the brokers answer; when they do, ``brokersUp()``.
        case probeBrokers
        case setHealth(ConnectorHealth)
        /// No more rounds: end the handoff.
        case end(End)
    }

    /// What the lag of an owned partition is computed from (see ``refreshLag(high:now:)``).
    struct LagEntry: Sendable, Equatable {
        var shard: Int32
        /// The partition's high watermark as of the last fetch.
        var high: Int64
        /// The first offset not yet acknowledged when nothing was acknowledged in this
        /// assignment: the first taken, else where consumption starts.
        var base: Int64?
    }

    struct LagRefresh: Sendable, Equatable {
        var view: [TopicPartition: LagEntry]
        /// Messages of the owned partitions not fetched yet.
        var backlog: Int64
        /// Partitions nothing was taken from whose start to ask for now (their committed offset,
        /// see ``startsFound(committed:watermarks:)``); empty unless a lookup is due.
        var lookUpStart: [TopicPartition]
    }

    /// An owned partition in this assignment.
    struct Owned: Sendable, Equatable {
        /// Fresh for every assignment, so that acknowledgements of a revoked assignment are
        /// recognised.
        var shard: Int32
        /// The offset after the last message taken: offsets only move forward.
        var next: Int64?
        /// The offset of the first message taken in this assignment.
        var firstTaken: Int64?
        /// The offset last sent in a commit.
        var committed: Int64?
        /// Where consumption started when nothing was taken yet: the group's committed offset,
        /// or the reset position without one.
        var start: Int64?
        /// A bounded run's partition that holds nothing more to take (paused for good).
        var reachedStop = false
    }

    let configuration: Configuration
    private(set) var owned: [TopicPartition: Owned] = [:]
    /// Messages taken and not handed over yet: one batch per shard, in the order of each
    /// shard's first message.
    private(set) var pending: [Batch] = []
    private var pendingIndex: [Int32: Int] = [:]
    private(set) var isPaused = false
    private(set) var isStopped = false
    private(set) var isClosing = false
    private(set) var brokersAreDown = false
    private var blockedSince: ContinuousClock.Instant?
    /// A bounded run's stop offset of each partition (empty: unbounded).
    private(set) var stopOffsets: [TopicPartition: Int64] = [:]
    /// When a bounded run's member first got partitions: it must own them all soon after.
    private var firstAssigned: ContinuousClock.Instant?
    private var lastCommit: ContinuousClock.Instant
    private var lastLagRefresh: ContinuousClock.Instant
    private var lastHealthCheck: ContinuousClock.Instant
    private var lastStartLookup: ContinuousClock.Instant

    init(_ configuration: Configuration, now: ContinuousClock.Instant) {
        self.configuration = configuration
        lastCommit = now
        lastHealthCheck = now
        lastLagRefresh = now - .seconds(1)
        lastStartLookup = now - .seconds(10)
    }

    var ownedShards: [Int32] { owned.values.map(\.shard) }
    var ownedPartitions: [TopicPartition] { Array(owned.keys) }
    var hasPending: Bool { !pending.isEmpty }

    /// The round to offer the handoff, if anything is pending.
    var roundToHandOver: [Batch]? { pending.isEmpty ? nil : pending }

    // MARK: assignment

    /// The partitions of `partitions` this member does not own yet: the ones that need a shard.
    func unowned(_ partitions: [TopicPartition]) -> [TopicPartition] {
        partitions.filter { owned[$0] == nil }
    }

    /// Partitions were given to this member; `shards` numbers those it did not own yet.
    mutating func assigned(_ partitions: [TopicPartition], shards: [TopicPartition: Int32], now: ContinuousClock.Instant) -> [Action] {
        for (partition, shard) in shards where owned[partition] == nil {
            owned[partition] = Owned(shard: shard)
        }
        if firstAssigned == nil && !partitions.isEmpty { firstAssigned = now }
        var actions = brokersUp()
        // Newly assigned partitions start paused too (the client applies the assignment after
        // the callback returns, and pauses what it was told).
        if isPaused { actions.append(.pause(partitions)) }
        return actions
    }

    /// Partitions are being taken away: their pending messages are dropped; unless they are
    /// lost, what was acknowledged of them is committed synchronously, after a drain unless
    /// closing. Once the actions are performed, ``revoked(_:)`` forgets them.
    mutating func revoking(_ partitions: [TopicPartition], lost: Bool) -> [Action] {
        let shards = partitions.compactMap { owned[$0]?.shard }
        let shardSet = Set(shards)
        dropPending(shardSet)
        var actions: [Action] = [.withdraw(shards: shardSet)]
        if !lost {
            actions.append(!isClosing && !shards.isEmpty ? .drainThenCommit(shards: shards) : .commit(shards: shards, sync: true))
        }
        return actions
    }

    /// Forgets revoked partitions: a later assignment of one starts fresh, with a new shard.
    mutating func revoked(_ partitions: [TopicPartition]) -> [Action] {
        [.release(shards: partitions.compactMap { owned.removeValue(forKey: $0)?.shard })]
    }

    /// The session ends: every owned shard is let go.
    mutating func releaseAll() -> [Action] {
        defer { owned = [:] }
        return [.release(shards: ownedShards)]
    }

    // MARK: fetching

    /// A message came from the client; returns whether it was taken into the pending round.
    mutating func fetched(_ message: Message) -> (taken: Bool, actions: [Action]) {
        let partition = TopicPartition(topic: message.channel, partition: message.partition)
        // One lookup by topic and partition per message (hashing the name is a cost per record).
        guard var found = owned.index(forKey: partition) else { return (false, []) }
        let shard = owned.values[found].shard
        var actions: [Action] = []
        if !stopOffsets.isEmpty, let stop = stopOffsets[partition] {
            if message.offset >= stop { return (false, reach(partition)) }
            if message.offset + 1 >= stop {
                actions += reach(partition)
                // `reach` changed the partition's record: look it up again.
                guard let again = owned.index(forKey: partition) else { return (false, actions) }
                found = again
            }
        }
        if brokersAreDown { actions += brokersUp() }
        // A message fetched again (after a pause, say) is already in flight: never twice, and
        // never out of order, into one shard's ledger.
        if let next = owned.values[found].next, message.offset < next { return (false, actions) }
        if owned.values[found].firstTaken == nil { owned.values[found].firstTaken = message.offset }
        owned.values[found].next = message.offset + 1
        if let index = pendingIndex[shard] {
            pending[index].messages.append(message)
        } else {
            pendingIndex[shard] = pending.count
            pending.append(Batch(shard: shard, messages: [message]))
        }
        return (true, actions)
    }

    /// The client reached the end of a partition: in a bounded run, past its stop offset (high
    /// watermarks only grow).
    mutating func partitionEnded(_ partition: TopicPartition) -> [Action] {
        guard stopOffsets[partition] != nil, owned[partition] != nil else { return [] }
        return reach(partition)
    }

    /// The handoff took the pending round: fetching resumes if it was paused.
    mutating func roundAccepted() -> [Action] {
        pending = []
        pendingIndex = [:]
        blockedSince = nil
        return isPaused ? resumeAll() : []
    }

    /// The handoff still holds the previous round (the byte budget or a target queue is full):
    /// fetching pauses once that lasted ``Configuration/pauseAfter``.
    mutating func roundBlocked(now: ContinuousClock.Instant) -> [Action] {
        let since = blockedSince ?? now
        blockedSince = since
        guard !isPaused && now - since > configuration.pauseAfter else { return [] }
        // Stop fetching, and keep polling so that the group membership stays alive.
        return pauseAll()
    }

    // MARK: periodic work and commits

    /// Time passed: a commit of everything acknowledged, a lag refresh and a broker probe
    /// (while the brokers are down) when each is due.
    mutating func tick(now: ContinuousClock.Instant) -> [Action] {
        var actions: [Action] = []
        if now - lastCommit >= configuration.commitInterval {
            lastCommit = now
            actions.append(.commit(shards: nil, sync: false))
        }
        if now - lastLagRefresh >= configuration.lagRefreshInterval {
            lastLagRefresh = now
            actions.append(.refreshLag)
        }
        if brokersAreDown && now - lastHealthCheck >= configuration.brokerProbeInterval {
            lastHealthCheck = now
            actions.append(.probeBrokers)
        }
        return actions
    }

    /// What to commit, given the acknowledged watermark (last acknowledged offset) of shards:
    /// the offset after it, only for owned shards and only where it moved past what was
    /// committed.
    func commits(acknowledged: [Int32: (TopicPartition, Int64)]) -> [Commit] {
        acknowledged.compactMap { shard, watermark in
            let (partition, through) = watermark
            guard let state = owned[partition], state.shard == shard else { return nil }
            let next = through + 1
            if let done = state.committed, done >= next { return nil }
            return Commit(shard: shard, partition: partition, offset: next)
        }
    }

    /// The client accepted a commit of `commits`.
    mutating func commitSent(_ commits: [Commit]) {
        for commit in commits where owned[commit.partition]?.shard == commit.shard {
            owned[commit.partition]?.committed = commit.offset
        }
    }

    /// The result of an asynchronous commit: a failed entry (no offset to commit is no failure)
    /// forgets its committed mark, so that the next commit sends it again.
    mutating func commitCompleted(_ entries: [(partition: TopicPartition, offset: Int64, error: KafkaError?)], error: KafkaError?) {
        for entry in entries {
            guard let failure = entry.error ?? error, failure.code != .noOffset, owned[entry.partition] != nil else { continue }
            owned[entry.partition]?.committed = nil
        }
    }

    // MARK: lag

    /// The lag inputs of the owned partitions whose high watermark is known, and which
    /// partitions' start to look up (at most every ``Configuration/startLookupInterval``).
    mutating func refreshLag(high: [TopicPartition: Int64], now: ContinuousClock.Instant) -> LagRefresh {
        var refresh = LagRefresh(view: [:], backlog: 0, lookUpStart: [])
        var missingStart: [TopicPartition] = []
        for (partition, state) in owned {
            guard let high = high[partition] else { continue }
            let base = state.firstTaken ?? state.committed ?? state.start
            if base == nil { missingStart.append(partition) }
            refresh.view[partition] = LagEntry(shard: state.shard, high: high, base: base)
            // Not fetched yet: from the next offset to take (or the start) to the end.
            refresh.backlog += max(0, high - (state.next ?? base ?? high))
        }
        if !missingStart.isEmpty && now - lastStartLookup >= configuration.startLookupInterval {
            lastStartLookup = now
            refresh.lookUpStart = missingStart
        }
        return refresh
    }

    /// Where consumption of looked-up partitions starts: the group's committed offset, or the
    /// reset position (`watermarks`) without one.
    mutating func startsFound(committed: [TopicPartition: Int64], watermarks: [TopicPartition: (low: Int64, high: Int64)]) {
        let latest = configuration.startsAtLatest
        for (partition, marks) in watermarks where owned[partition] != nil {
            if let offset = committed[partition], offset >= 0 {
                owned[partition]?.start = offset
            } else {
                owned[partition]?.start = latest ? marks.high : marks.low
            }
        }
    }

    // MARK: brokers

    mutating func brokersDown(_ reason: String, now: ContinuousClock.Instant) -> [Action] {
        brokersAreDown = true
        lastHealthCheck = now
        return [.setHealth(.down("all brokers are down: \(reason)"))]
    }

    mutating func brokersUp() -> [Action] {
        brokersAreDown = false
        return [.setHealth(.up)]
    }

    // MARK: bounded runs, stop and close

    /// A bounded run: nothing at or past each partition's stop offset is taken.
    mutating func bound(by stopOffsets: [TopicPartition: Int64]) {
        self.stopOffsets = stopOffsets
    }

    /// The context is stopping: pending messages are dropped, fetching pauses and the rounds end.
    mutating func stopRequested() -> [Action] {
        guard !isStopped else { return [] }
        isStopped = true
        let pause = pauseAll()
        dropPending(nil)
        return pause + [.end(.stopped)]
    }

    /// A bounded run fails once the group settled while another member holds some of its
    /// partitions, and finishes once it reached every stop with everything handed over.
    mutating func checkBoundedRun(now: ContinuousClock.Instant, handoffIsEmpty: Bool) -> [Action] {
        guard !isStopped && !stopOffsets.isEmpty else { return [] }
        if let error = sharedGroupError(now: now) {
            isStopped = true
            return [.setHealth(.down(error.message)), .end(.failed(error))]
        }
        guard pending.isEmpty && handoffIsEmpty && reachedEveryStop else { return [] }
        isStopped = true
        return pauseAll() + [.end(.reachedEveryStop)]
    }

    /// The session closes: everything acknowledged is committed synchronously (the revoke that
    /// closing reports commits without draining).
    mutating func close() -> [Action] {
        isClosing = true
        return [.commit(shards: nil, sync: true)]
    }

    // MARK: helpers

    /// A bounded run needs its group to itself: another member (a bridge still running) holds
    /// partitions that this one would wait for forever.
    private func sharedGroupError(now: ContinuousClock.Instant) -> KafkaError? {
        guard let firstAssigned, now - firstAssigned > configuration.settleTime else { return nil }
        let ownedCount = stopOffsets.keys.filter { owned[$0] != nil }.count
        guard ownedCount < stopOffsets.count else { return nil }
        return KafkaError(
            .state,
            "a bounded run needs group '\(configuration.group)' to itself, but this member owns \(ownedCount) of \(stopOffsets.count) partitions: another member (a bridge still running?) holds the rest; stop it and run again",
            fatal: true)
    }

    /// Whether this member owns every partition of its topics and each reached its stop offset
    /// (or started at it).
    private var reachedEveryStop: Bool {
        stopOffsets.allSatisfy { partition, stop in
            guard let state = owned[partition] else { return false }
            if state.reachedStop { return true }
            guard let position = state.next ?? state.start else { return false }
            return position >= stop
        }
    }

    /// A bounded run's partition that holds nothing more to take: paused for good.
    private mutating func reach(_ partition: TopicPartition) -> [Action] {
        guard owned[partition]?.reachedStop == false else { return [] }
        owned[partition]?.reachedStop = true
        return [.pause([partition])]
    }

    private mutating func pauseAll() -> [Action] {
        isPaused = true
        return [.pause(ownedPartitions)]
    }

    private mutating func resumeAll() -> [Action] {
        isPaused = false
        // Continue after what was taken, not from what the client may fall back to.
        let resumed = owned.filter { !$0.value.reachedStop }
        return [
            .resume(
                Array(resumed.keys),
                seek: resumed.compactMap { partition, state in state.next.map { Seek(partition: partition, offset: $0) } })
        ]
    }

    /// Drops the pending messages of `shards` (all when nil).
    private mutating func dropPending(_ shards: Set<Int32>?) {
        if let shards {
            pending.removeAll { shards.contains($0.shard) }
        } else {
            pending = []
        }
        pendingIndex = Dictionary(uniqueKeysWithValues: pending.enumerated().map { ($0.element.shard, $0.offset) })
    }
}
