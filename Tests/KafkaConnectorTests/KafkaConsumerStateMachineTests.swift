import CRdKafka
import SwitchyardCore
import Testing
@testable import KafkaConnector

/// The consumer session's delivery decisions, event by event, without a cluster or a clock.
@Suite("Kafka consumer state machine")
struct KafkaConsumerStateMachineTests {
    typealias Machine = KafkaConsumerStateMachine

    let start = ContinuousClock.now
    let p0 = TopicPartition(topic: "orders", partition: 0)
    let p1 = TopicPartition(topic: "orders", partition: 1)

    func at(milliseconds: Int) -> ContinuousClock.Instant { start + .milliseconds(milliseconds) }

    /// A machine that owns `partitions` as shards 0, 1, …
    func machine(owning partitions: [TopicPartition] = [], _ configuration: Machine.Configuration = .init(commitInterval: .seconds(1)))
        -> Machine
    {
        var machine = Machine(configuration, now: start)
        if !partitions.isEmpty {
            let shards = Dictionary(uniqueKeysWithValues: partitions.enumerated().map { ($0.element, Int32($0.offset)) })
            _ = machine.assigned(partitions, shards: shards, now: start)
        }
        return machine
    }

    func message(_ partition: TopicPartition, _ offset: Int64) -> Message {
        Message(value: [1, 2, 3], channel: partition.topic, partition: partition.partition, offset: offset)
    }

    /// Fetches `offsets` of `partition`; returns which were taken.
    func fetch(_ machine: inout Machine, _ partition: TopicPartition, _ offsets: [Int64]) -> [Int64] {
        offsets.filter { machine.fetched(message(partition, $0)).taken }
    }

    func offsets(_ round: [Batch]?, shard: Int32) -> [Int64] {
        round?.first { $0.shard == shard }?.messages.map(\.offset) ?? []
    }

    // MARK: offsets only move forward

    @Test func aMessageFetchedAgainAfterAPauseIsNotTakenTwice() {
        var machine = machine(owning: [p0])
        #expect(fetch(&machine, p0, [0, 1, 2]) == [0, 1, 2])
        _ = machine.roundBlocked(now: at(milliseconds: 0))
        #expect(machine.roundBlocked(now: at(milliseconds: 600)).paused == [p0])
        let resumed = machine.roundAccepted()
        #expect(resumed.seeks == [Machine.Seek(partition: p0, offset: 3)])
        // The client falls back and delivers 1 and 2 again, then 3.
        #expect(fetch(&machine, p0, [1, 2, 3]) == [3])
        #expect(offsets(machine.roundToHandOver, shard: 0) == [3])
    }

    @Test func aMessageOlderThanOneAlreadyTakenIsDroppedWithinARound() {
        var machine = machine(owning: [p0])
        #expect(fetch(&machine, p0, [5, 4, 6, 6]) == [5, 6])
        #expect(offsets(machine.roundToHandOver, shard: 0) == [5, 6])
    }

    @Test func aRoundHoldsOneBatchPerShardInTheOrderOfTheirFirstMessages() {
        var machine = machine(owning: [p0, p1])
        _ = fetch(&machine, p1, [10])
        _ = fetch(&machine, p0, [0])
        _ = fetch(&machine, p1, [11])
        #expect(machine.roundToHandOver?.map(\.shard) == [1, 0])
        #expect(offsets(machine.roundToHandOver, shard: 1) == [10, 11])
        _ = machine.roundAccepted()
        #expect(machine.roundToHandOver == nil)
    }

    @Test func aMessageOfAPartitionNotOwnedIsNotTaken() {
        var machine = machine(owning: [p0])
        #expect(fetch(&machine, p1, [0]) == [])
        #expect(!machine.hasPending)
    }

    // MARK: pausing while the handoff is blocked

    @Test func blockedForHalfASecondPausesAndResumeSeeksToTheNextOffset() {
        var machine = machine(owning: [p0, p1])
        _ = fetch(&machine, p0, [7, 8])
        #expect(machine.roundBlocked(now: at(milliseconds: 0)).isEmpty)
        #expect(machine.roundBlocked(now: at(milliseconds: 500)).isEmpty)
        #expect(!machine.isPaused)
        let paused = machine.roundBlocked(now: at(milliseconds: 501))
        #expect(paused.paused == [p0, p1])
        #expect(machine.isPaused)
        // Still blocked: paused once.
        #expect(machine.roundBlocked(now: at(milliseconds: 900)).isEmpty)
        let resumed = machine.roundAccepted()
        #expect(resumed.resumed == [p0, p1])
        // p1 took nothing yet: no seek, it continues where the client is.
        #expect(resumed.seeks == [Machine.Seek(partition: p0, offset: 9)])
        #expect(!machine.isPaused)
        // A round taken without a pause resumes nothing.
        _ = fetch(&machine, p0, [9])
        #expect(machine.roundAccepted().isEmpty)
    }

    @Test func theBlockedTimeRestartsWithEveryRoundTaken() {
        var machine = machine(owning: [p0])
        _ = fetch(&machine, p0, [0])
        _ = machine.roundBlocked(now: at(milliseconds: 0))
        _ = machine.roundAccepted()
        _ = fetch(&machine, p0, [1])
        #expect(machine.roundBlocked(now: at(milliseconds: 400)).isEmpty)
        #expect(machine.roundBlocked(now: at(milliseconds: 800)).isEmpty)
        #expect(machine.roundBlocked(now: at(milliseconds: 901)).paused == [p0])
    }

    @Test func partitionsAssignedWhilePausedStartPaused() {
        var machine = machine(owning: [p0])
        _ = fetch(&machine, p0, [0])
        _ = machine.roundBlocked(now: at(milliseconds: 0))
        _ = machine.roundBlocked(now: at(milliseconds: 501))
        let actions = machine.assigned([p1], shards: [p1: 1], now: at(milliseconds: 600))
        #expect(actions.paused == [p1])
        #expect(actions.healths == [.up])
        #expect(machine.roundAccepted().resumed == [p0, p1])

        var running = self.machine(owning: [p0])
        #expect(running.assigned([p1], shards: [p1: 1], now: start).paused == [])
    }

    // MARK: revokes

    @Test func aRevokeWithMessagesInFlightDrainsThenCommitsSynchronously() {
        var machine = machine(owning: [p0, p1])
        _ = fetch(&machine, p0, [0, 1, 2])
        _ = fetch(&machine, p1, [0])
        let actions = machine.revoking([p0], lost: false)
        #expect(actions.kinds == ["withdraw", "drainThenCommit"])
        #expect(actions.withdrawn == [0])
        #expect(actions.drained == [0])
        // The revoked shard's pending messages are gone; the other's stay.
        #expect(machine.roundToHandOver?.map(\.shard) == [1])
        // After the drain, what was acknowledged of it is committed.
        #expect(machine.commits(acknowledged: [0: (p0, 2)]) == [Machine.Commit(shard: 0, partition: p0, offset: 3)])
        #expect(machine.revoked([p0]).released == [0])
        #expect(machine.ownedPartitions == [p1])
    }

    @Test func aRevokeWhileClosingCommitsWithoutDraining() {
        var machine = machine(owning: [p0])
        #expect(machine.close().commitRequests == [.init(shards: nil, sync: true)])
        let actions = machine.revoking([p0], lost: false)
        #expect(actions.drained == [])
        #expect(actions.commitRequests == [.init(shards: [0], sync: true)])
    }

    @Test func lostPartitionsAreNeverCommitted() {
        var machine = machine(owning: [p0])
        _ = fetch(&machine, p0, [0, 1])
        let actions = machine.revoking([p0], lost: true)
        #expect(actions.kinds == ["withdraw"])
        #expect(!machine.hasPending)
        #expect(machine.revoked([p0]).released == [0])
        // Even if an acknowledgement of the lost shard turned up, nothing is committed for it.
        #expect(machine.commits(acknowledged: [0: (p0, 1)]) == [])
    }

    @Test func reassigningAfterARevokeStartsFresh() {
        var machine = machine(owning: [p0])
        _ = fetch(&machine, p0, [0, 1, 2, 3, 4])
        machine.commitSent(machine.commits(acknowledged: [0: (p0, 4)]))
        _ = machine.revoking([p0], lost: false)
        _ = machine.revoked([p0])
        #expect(machine.unowned([p0]) == [p0])
        _ = machine.assigned([p0], shards: [p0: 7], now: at(milliseconds: 10))
        // The group's committed offset may be behind what this member took before: taken again.
        #expect(fetch(&machine, p0, [2, 3]) == [2, 3])
        #expect(machine.roundToHandOver?.map(\.shard) == [7])
        // The old shard's acknowledgements are ignored; the new one commits from scratch.
        #expect(machine.commits(acknowledged: [0: (p0, 9)]) == [])
        #expect(machine.commits(acknowledged: [7: (p0, 2)]) == [Machine.Commit(shard: 7, partition: p0, offset: 3)])
        let lag = machine.refreshLag(high: [p0: 10], now: at(milliseconds: 10))
        #expect(lag.view[p0] == Machine.LagEntry(shard: 7, high: 10, base: 2))
    }

    // MARK: commits

    @Test func commitsOnlyOffsetsThatMoved() {
        var machine = machine(owning: [p0, p1])
        let first = machine.commits(acknowledged: [0: (p0, 4), 1: (p1, 9)])
        #expect(Set(first) == [Machine.Commit(shard: 0, partition: p0, offset: 5), Machine.Commit(shard: 1, partition: p1, offset: 10)])
        machine.commitSent(first)
        #expect(machine.commits(acknowledged: [0: (p0, 4), 1: (p1, 9)]) == [])
        #expect(machine.commits(acknowledged: [0: (p0, 6), 1: (p1, 9)]) == [Machine.Commit(shard: 0, partition: p0, offset: 7)])
    }

    @Test func aCommitTheClientRefusedIsSentAgain() {
        let machine = machine(owning: [p0])
        let commits = machine.commits(acknowledged: [0: (p0, 4)])
        // The commit threw: nothing was recorded as committed.
        #expect(machine.commits(acknowledged: [0: (p0, 4)]) == commits)
    }

    @Test func aFailedCommitIsSentAgainAtTheNextInterval() {
        var machine = machine(owning: [p0, p1])
        let commits = machine.commits(acknowledged: [0: (p0, 4), 1: (p1, 4)])
        machine.commitSent(commits)
        let failed = KafkaError(RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, "timed out")
        machine.commitCompleted([(p0, 5, failed), (p1, 5, nil)], error: nil)
        #expect(machine.commits(acknowledged: [0: (p0, 4), 1: (p1, 4)]) == [Machine.Commit(shard: 0, partition: p0, offset: 5)])
        // A request-level error fails every entry.
        machine.commitSent(machine.commits(acknowledged: [0: (p0, 4)]))
        machine.commitCompleted([(p0, 5, nil), (p1, 5, nil)], error: failed)
        #expect(machine.commits(acknowledged: [0: (p0, 4), 1: (p1, 4)]).count == 2)
    }

    @Test func noOffsetToCommitIsNoFailure() {
        var machine = machine(owning: [p0])
        machine.commitSent(machine.commits(acknowledged: [0: (p0, 4)]))
        machine.commitCompleted([(p0, 5, nil)], error: KafkaError(.noOffset, "no offset"))
        #expect(machine.commits(acknowledged: [0: (p0, 4)]) == [])
    }

    @Test func theCommitIntervalCommitsEverythingAcknowledgedAsynchronously() {
        var machine = machine(owning: [p0])
        #expect(machine.tick(now: at(milliseconds: 999)).commitRequests == [])
        #expect(machine.tick(now: at(milliseconds: 1000)).commitRequests == [.init(shards: nil, sync: false)])
        #expect(machine.tick(now: at(milliseconds: 1500)).commitRequests == [])
        #expect(machine.tick(now: at(milliseconds: 2000)).commitRequests == [.init(shards: nil, sync: false)])
    }

    // MARK: bounded runs

    @Test func aBoundedRunTakesNothingAtOrPastItsStopAndPausesThere() {
        var machine = machine(owning: [p0])
        machine.bound(by: [p0: 3])
        #expect(machine.fetched(message(p0, 1)).actions.paused == [])
        let last = machine.fetched(message(p0, 2))
        #expect(last.taken)
        #expect(last.actions.paused == [p0])
        let past = machine.fetched(message(p0, 3))
        #expect(!past.taken)
        #expect(past.actions.isEmpty)
        // A partition that reached its stop is not resumed after a pause.
        _ = machine.roundBlocked(now: at(milliseconds: 0))
        _ = machine.roundBlocked(now: at(milliseconds: 501))
        #expect(machine.roundAccepted().resumed == [])
    }

    @Test func aBoundedRunEndsWhenEveryOwnedPartitionReachedItsStop() {
        var machine = machine(owning: [p0, p1])
        machine.bound(by: [p0: 2, p1: 5])
        _ = fetch(&machine, p0, [0, 1])
        _ = machine.roundAccepted()
        // p1 has not reached its stop: the run goes on.
        #expect(machine.checkBoundedRun(now: at(milliseconds: 10), handoffIsEmpty: true).isEmpty)
        #expect(fetch(&machine, p1, [3, 4]) == [3, 4])
        // Messages still pending, then a round still in the handoff: not yet.
        #expect(machine.checkBoundedRun(now: at(milliseconds: 20), handoffIsEmpty: true).isEmpty)
        _ = machine.roundAccepted()
        #expect(machine.checkBoundedRun(now: at(milliseconds: 30), handoffIsEmpty: false).isEmpty)
        let actions = machine.checkBoundedRun(now: at(milliseconds: 40), handoffIsEmpty: true)
        #expect(actions.kinds == ["pause", "end"])
        #expect(actions.end == "reachedEveryStop")
        #expect(machine.isStopped)
        #expect(machine.checkBoundedRun(now: at(milliseconds: 50), handoffIsEmpty: true).isEmpty)
    }

    @Test func aPartitionEndInABoundedRunPausesItForGood() {
        var unbounded = machine(owning: [p0])
        #expect(unbounded.partitionEnded(p0).isEmpty)
        var machine = machine(owning: [p0])
        machine.bound(by: [p0: 5, p1: 5])
        _ = fetch(&machine, p0, [0, 1])
        _ = machine.roundAccepted()
        // The last offsets before the stop are gone (compaction, transaction markers).
        #expect(machine.partitionEnded(p0).paused == [p0])
        #expect(machine.partitionEnded(p0).isEmpty)
        // A partition this member does not own is not marked.
        #expect(machine.partitionEnded(p1).isEmpty)
        _ = machine.assigned([p1], shards: [p1: 1], now: start)
        #expect(machine.checkBoundedRun(now: at(milliseconds: 10), handoffIsEmpty: true).isEmpty)
        #expect(machine.partitionEnded(p1).paused == [p1])
        #expect(machine.checkBoundedRun(now: at(milliseconds: 20), handoffIsEmpty: true).end == "reachedEveryStop")
    }

    @Test func aBoundedPartitionThatStartsAtItsStopNeedsNothingTaken() {
        var machine = machine(owning: [p0])
        machine.bound(by: [p0: 4])
        #expect(machine.checkBoundedRun(now: at(milliseconds: 0), handoffIsEmpty: true).isEmpty)
        machine.startsFound(committed: [p0: 4], watermarks: [p0: (low: 0, high: 4)])
        #expect(machine.checkBoundedRun(now: at(milliseconds: 1), handoffIsEmpty: true).end == "reachedEveryStop")
    }

    @Test func aBoundedRunSharingItsGroupFails() {
        var machine = machine(.init(commitInterval: .seconds(1), sessionTimeout: .seconds(3), group: "copy"))
        machine.bound(by: [p0: 1, p1: 1])
        _ = machine.assigned([p0], shards: [p0: 0], now: start)
        _ = fetch(&machine, p0, [0])
        _ = machine.roundAccepted()
        // The group may take three session timeouts, at least 10 s, to settle.
        #expect(machine.checkBoundedRun(now: at(milliseconds: 10_000), handoffIsEmpty: true).isEmpty)
        let actions = machine.checkBoundedRun(now: at(milliseconds: 10_001), handoffIsEmpty: true)
        #expect(actions.kinds == ["setHealth", "end"])
        #expect(actions.end == "failed")
        #expect(actions.failure?.isFatal == true)
        #expect(actions.failure?.message.contains("group 'copy'") == true)
        #expect(actions.failure?.message.contains("owns 1 of 2 partitions") == true)
        #expect(machine.isStopped)
    }

    // MARK: stop, close, brokers, lag

    @Test func stoppingDropsPendingAndFinishes() {
        var machine = machine(owning: [p0, p1])
        _ = fetch(&machine, p0, [0, 1])
        let actions = machine.stopRequested()
        #expect(actions.kinds == ["pause", "end"])
        #expect(actions.paused == [p0, p1])
        #expect(actions.end == "stopped")
        #expect(!machine.hasPending)
        #expect(machine.isStopped)
        #expect(machine.stopRequested().isEmpty)
        // Partitions assigned after the stop start paused.
        #expect(
            machine.assigned(
                [TopicPartition(topic: "orders", partition: 2)], shards: [TopicPartition(topic: "orders", partition: 2): 2], now: start
            ).paused.count == 1)
    }

    @Test func closeCommitsWhatWasAcknowledged() {
        var machine = machine(owning: [p0])
        #expect(!machine.isClosing)
        let actions = machine.close()
        #expect(actions.commitRequests == [.init(shards: nil, sync: true)])
        #expect(machine.isClosing)
        #expect(machine.releaseAll().released == [0])
        #expect(machine.ownedShards.isEmpty)
    }

    @Test func brokersDownAreProbedEveryTwoSecondsAndAMessageBringsThemUp() {
        var machine = machine(owning: [p0])
        #expect(machine.tick(now: at(milliseconds: 5000)).kinds.contains("probeBrokers") == false)
        #expect(
            machine.brokersDown("connection refused", now: at(milliseconds: 5000)).healths == [
                .down("all brokers are down: connection refused")
            ])
        #expect(!machine.tick(now: at(milliseconds: 6999)).kinds.contains("probeBrokers"))
        #expect(machine.tick(now: at(milliseconds: 7000)).kinds.contains("probeBrokers"))
        let fetched = machine.fetched(message(p0, 0))
        #expect(fetched.actions.healths == [.up])
        #expect(!machine.brokersAreDown)
        #expect(machine.fetched(message(p0, 1)).actions.healths == [])
    }

    @Test func theLagBaseIsTheFirstTakenElseTheCommittedElseTheStart() {
        var machine = machine(owning: [p0, p1], .init(commitInterval: .seconds(1), startsAtLatest: true))
        let first = machine.refreshLag(high: [p0: 100, p1: 50], now: start)
        #expect(first.view[p0] == Machine.LagEntry(shard: 0, high: 100, base: nil))
        #expect(Set(first.lookUpStart) == [p0, p1])
        // At most every 5 s.
        #expect(machine.refreshLag(high: [p0: 100, p1: 50], now: at(milliseconds: 4999)).lookUpStart == [])
        machine.startsFound(committed: [p0: 40, p1: -1], watermarks: [p0: (low: 0, high: 100), p1: (low: 3, high: 50)])
        var lag = machine.refreshLag(high: [p0: 100, p1: 50], now: at(milliseconds: 5000))
        #expect(lag.view[p0]?.base == 40)
        #expect(lag.view[p1]?.base == 50)
        #expect(lag.backlog == 60)
        #expect(lag.lookUpStart == [])
        _ = fetch(&machine, p0, [45, 46])
        machine.commitSent(machine.commits(acknowledged: [1: (p1, 51)]))
        lag = machine.refreshLag(high: [p0: 100], now: at(milliseconds: 5200))
        #expect(lag.view[p0]?.base == 45)
        // A partition without a known high watermark is left out.
        #expect(lag.view[p1] == nil)
        #expect(lag.backlog == 53)
    }
}

// MARK: reading actions

extension [KafkaConsumerStateMachine.Action] {
    struct CommitRequest: Equatable {
        var shards: [Int32]?
        var sync: Bool
    }

    var kinds: [String] {
        map { action in
            switch action {
            case .pause: "pause"
            case .resume: "resume"
            case .commit: "commit"
            case .drainThenCommit: "drainThenCommit"
            case .withdraw: "withdraw"
            case .release: "release"
            case .refreshLag: "refreshLag"
            case .probeBrokers: "probeBrokers"
            case .setHealth: "setHealth"
            case .end: "end"
            }
        }
    }

    var paused: Set<TopicPartition> {
        reduce(into: []) { if case .pause(let partitions) = $1 { $0.formUnion(partitions) } }
    }

    var resumed: Set<TopicPartition> {
        reduce(into: []) { if case .resume(let partitions, _) = $1 { $0.formUnion(partitions) } }
    }

    var seeks: Set<KafkaConsumerStateMachine.Seek> {
        reduce(into: []) { if case .resume(_, let seek) = $1 { $0.formUnion(seek) } }
    }

    var commitRequests: [CommitRequest] {
        compactMap { if case .commit(let shards, let sync) = $0 { CommitRequest(shards: shards, sync: sync) } else { nil } }
    }

    var drained: [Int32] {
        flatMap { action -> [Int32] in if case .drainThenCommit(let shards) = action { shards } else { [] } }
    }

    var withdrawn: Set<Int32> {
        reduce(into: []) { if case .withdraw(let shards) = $1 { $0.formUnion(shards) } }
    }

    var released: [Int32] {
        flatMap { action -> [Int32] in if case .release(let shards) = action { shards } else { [] } }
    }

    var healths: [ConnectorHealth] {
        compactMap { if case .setHealth(let health) = $0 { health } else { nil } }
    }

    var end: String? {
        lazy.compactMap { action -> String? in
            guard case .end(let end) = action else { return nil }
            switch end {
            case .stopped: return "stopped"
            case .reachedEveryStop: return "reachedEveryStop"
            case .failed: return "failed"
            }
        }.first
    }

    var failure: KafkaError? {
        lazy.compactMap { if case .end(.failed(let error)) = $0 { error } else { nil } }.first
    }
}
