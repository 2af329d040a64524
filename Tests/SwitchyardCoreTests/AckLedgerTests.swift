import Testing
@testable import SwitchyardCore

@Suite("Acknowledgement ledger")
struct AckLedgerTests {
    let source = RecordingSource()
    let observer = RecordingObserver()
    var ledger: SourceLedger { SourceLedger(source: "orders", receiver: source, observer: observer) }

    @Test func outOfOrderConfirmationsReleaseOnlyTheContiguousPrefix() {
        let ledger = self.ledger
        let handle = ledger.register(shard: 0, offsets: [10, 11, 12, 13, 14], remaining: [1, 1, 1, 1, 1], bytes: 500)
        handle.confirm([2])
        handle.confirm([4])
        #expect(source.acks.isEmpty)
        handle.confirm([0])
        #expect(source.acks == [Ack(shard: 0, through: 10, count: 1)])
        handle.confirm([1])
        // 11 completes the run 10...12; 13 is still out, so 14 waits.
        #expect(source.acks == [Ack(shard: 0, through: 10, count: 1), Ack(shard: 0, through: 12, count: 2)])
        handle.confirm([3])
        #expect(
            source.acks == [
                Ack(shard: 0, through: 10, count: 1),
                Ack(shard: 0, through: 12, count: 2),
                Ack(shard: 0, through: 14, count: 2),
            ])
        #expect(ledger.ledger(for: 0).releasedThrough == 14)
        #expect(!ledger.hasPending)
    }

    @Test func anUnconfirmedMessageHoldsTheWatermarkBackWhileLaterOnesAreConfirmed() {
        let ledger = self.ledger
        let first = ledger.register(shard: 3, offsets: [100, 101, 102], remaining: [1, 1, 1], bytes: 30)
        let second = ledger.register(shard: 3, offsets: [103, 104], remaining: [1, 1], bytes: 20)
        first.confirm([0, 2])  // 101 is in flight (or failed): never confirmed
        second.confirmAll()
        #expect(source.acks == [Ack(shard: 3, through: 100, count: 1)])
        #expect(ledger.ledger(for: 3).releasedThrough == 100)
        #expect(ledger.hasPending)
        // The later batch is fully confirmed, yet it is not complete for the watermark.
        #expect(observer.completions.count == 1)
        #expect(observer.completions.first?.bytes == 20)
    }

    @Test func severalBatchesOnOneShardReleaseInSubmissionOrder() {
        let ledger = self.ledger
        let a = ledger.register(shard: 1, offsets: [0, 1, 2], remaining: [1, 1, 1], bytes: 3)
        let b = ledger.register(shard: 1, offsets: [3, 4], remaining: [1, 1], bytes: 2)
        let c = ledger.register(shard: 1, offsets: [5, 6, 7], remaining: [1, 1, 1], bytes: 3)
        c.confirmAll()
        b.confirmAll()
        #expect(source.acks.isEmpty)
        a.confirm([0, 1])
        #expect(source.acks == [Ack(shard: 1, through: 1, count: 2)])
        a.confirm([2])
        // 2 completes batch a, and b and c were waiting behind it: all released in one call.
        #expect(source.acks == [Ack(shard: 1, through: 1, count: 2), Ack(shard: 1, through: 7, count: 6)])
        #expect(!ledger.hasPending)
    }

    @Test func aFannedOutMessageIsReleasedOnlyAfterEveryTargetConfirmed() {
        let ledger = self.ledger
        let handle = ledger.register(shard: 0, offsets: [7, 8], remaining: [2, 2], bytes: 40)
        handle.confirmAll()  // first target
        #expect(source.acks.isEmpty)
        #expect(observer.completions.isEmpty)
        handle.confirm([0])  // second target, message 7
        #expect(source.acks == [Ack(shard: 0, through: 7, count: 1)])
        handle.confirm([1])
        #expect(source.acks == [Ack(shard: 0, through: 7, count: 1), Ack(shard: 0, through: 8, count: 1)])
        #expect(observer.completions.count == 1)
    }

    @Test func filteredMessagesAreReleasedAtOnce() {
        let ledger = self.ledger
        _ = ledger.register(shard: 0, offsets: [0, 1, 2], remaining: [0, 0, 0], bytes: 90)
        #expect(source.acks == [Ack(shard: 0, through: 2, count: 3)])
        #expect(!ledger.hasPending)
    }

    @Test func aFullyFilteredBatchReportsItsCompletionSoItsBytesAreFreed() {
        let ledger = self.ledger
        _ = ledger.register(shard: 0, offsets: [0, 1], remaining: [0, 0], bytes: 90)
        #expect(observer.completions.map(\.messages) == [2])
        #expect(observer.completions.map(\.bytes) == [90])
    }

    @Test func filteredMessagesBetweenRoutedOnesDoNotHoldTheWatermark() {
        let ledger = self.ledger
        let handle = ledger.register(shard: 0, offsets: [0, 1, 2, 3], remaining: [0, 1, 0, 1], bytes: 40)
        #expect(source.acks == [Ack(shard: 0, through: 0, count: 1)])
        handle.confirm([1])
        #expect(source.acks.last == Ack(shard: 0, through: 2, count: 2))
        handle.confirm([3])
        #expect(source.acks.last == Ack(shard: 0, through: 3, count: 1))
        #expect(observer.completions.map(\.bytes) == [40])
    }

    @Test func shardsAreIndependent() {
        let ledger = self.ledger
        let zero = ledger.register(shard: 0, offsets: [0, 1], remaining: [1, 1], bytes: 2)
        let one = ledger.register(shard: 1, offsets: [50, 51], remaining: [1, 1], bytes: 2)
        // Shard 0 is stuck on its first message; shard 1 goes ahead.
        zero.confirm([1])
        one.confirmAll()
        #expect(source.acks(shard: 1) == [Ack(shard: 1, through: 51, count: 2)])
        #expect(source.acks(shard: 0).isEmpty)
        #expect(ledger.ledger(for: 1).hasPending == false)
        #expect(ledger.ledger(for: 0).hasPending)
        zero.confirm([0])
        #expect(source.acks(shard: 0) == [Ack(shard: 0, through: 1, count: 2)])
    }

    @Test func waitUntilDrainedResumesWhenEverythingIsConfirmed() async {
        let ledger = self.ledger
        let a = ledger.register(shard: 0, offsets: [0, 1], remaining: [1, 1], bytes: 2)
        let b = ledger.register(shard: 2, offsets: [9], remaining: [1], bytes: 1)
        let drained = Flag()
        let waiter = Task {
            await ledger.waitUntilDrained()
            drained.set()
        }
        a.confirmAll()
        // Shard 2 is still pending.
        #expect(!drained.isSet)
        b.confirmAll()
        await waiter.value
        #expect(drained.isSet)
        #expect(!ledger.hasPending)
    }

    @Test func waitUntilDrainedWaitsForTheLastConfirmation() async {
        let ledger = self.ledger
        let handle = ledger.register(shard: 0, offsets: [0, 1], remaining: [1, 1], bytes: 2)
        let drained = Flag()
        let shard = ledger.ledger(for: 0)
        let waiter = Task {
            await shard.waitUntilDrained()
            drained.set()
        }
        handle.confirm([1])
        // Message 0 is still out: the waiter cannot have been resumed.
        #expect(!drained.isSet)
        handle.confirm([0])
        await waiter.value
        #expect(drained.isSet)
    }

    @Test func waitUntilDrainedReturnsAtOnceWithNothingPending() async {
        let ledger = self.ledger
        await ledger.waitUntilDrained()
        await ledger.ledger(for: 4).waitUntilDrained()
        #expect(!ledger.hasPending)
    }

    @Test func budgetBytesAreReleasedWhenABatchCompletes() async throws {
        let budget = ByteBudget(limit: 1000)
        let stats = DeliveryStats(budget: budget)
        let ledger = SourceLedger(source: "orders", receiver: source, observer: stats)
        try await budget.acquire(300)
        try await budget.acquire(200)
        stats.submitted(messages: 3, bytes: 300)
        stats.submitted(messages: 2, bytes: 200)
        let a = ledger.register(shard: 0, offsets: [0, 1, 2], remaining: [1, 1, 1], bytes: 300)
        let b = ledger.register(shard: 0, offsets: [3, 4], remaining: [1, 1], bytes: 200)
        #expect(budget.used == 500)
        a.confirm([0, 1])
        #expect(budget.used == 500)
        b.confirmAll()
        // b is complete even though the watermark is held by a.
        #expect(budget.used == 300)
        #expect(stats.inflightMessages == 3)
        a.confirm([2])
        #expect(budget.used == 0)
        #expect(stats.inflightMessages == 0)
        #expect(stats.inflightBytes == 0)
    }
}
