import Testing
@testable import SwitchyardCore

@Suite("Byte budget")
struct ByteBudgetTests {
    @Test func aSecondAcquireWaitsUntilBytesAreReleased() async throws {
        let budget = ByteBudget(limit: 100)
        try await budget.acquire(80)
        let admitted = Flag()
        let waiter = Task {
            try await budget.acquire(40)
            admitted.set()
        }
        await eventually("the second acquire is waiting") { budget.suspensions == 1 }
        #expect(!admitted.isSet)
        #expect(budget.used == 80)
        budget.release(80)
        try await waiter.value
        #expect(admitted.isSet)
        #expect(budget.used == 40)
    }

    @Test func tryAcquireRefusesWhatDoesNotFit() {
        let budget = ByteBudget(limit: 100)
        #expect(budget.tryAcquire(60))
        #expect(!budget.tryAcquire(41))
        #expect(budget.tryAcquire(40))
        #expect(budget.used == 100)
    }

    @Test func anOversizedRequestIsAdmittedWhenNothingIsInUse() async throws {
        let budget = ByteBudget(limit: 10)
        try await budget.acquire(1000)
        #expect(budget.used == 1000)
        #expect(budget.peak == 1000)
        // Anything more waits until the oversized request is given back.
        let admitted = Flag()
        let waiter = Task {
            try await budget.acquire(1)
            admitted.set()
        }
        await eventually("the small acquire is waiting") { budget.suspensions == 1 }
        #expect(!admitted.isSet)
        budget.release(1000)
        try await waiter.value
        #expect(budget.used == 1)
    }

    @Test func waitersAreAdmittedInArrivalOrder() async throws {
        let budget = ByteBudget(limit: 100)
        try await budget.acquire(100)
        let flags = [Flag(), Flag(), Flag()]
        var waiters: [Task<Void, any Error>] = []
        for (index, flag) in flags.enumerated() {
            waiters.append(
                Task {
                    try await budget.acquire(30)
                    flag.set()
                })
            await eventually("waiter \(index) is queued") { budget.suspensions == UInt64(index + 1) }
        }
        budget.release(40)  // room for exactly one waiter: the first
        #expect(budget.used == 90)
        try await waiters[0].value
        #expect(!flags[1].isSet && !flags[2].isSet)
        budget.release(30)
        try await waiters[1].value
        #expect(!flags[2].isSet)
        budget.release(30)
        try await waiters[2].value
        #expect(budget.used == 90)
    }

    @Test func aSmallLaterRequestDoesNotOvertakeALargerEarlierOne() async throws {
        let budget = ByteBudget(limit: 100)
        try await budget.acquire(100)
        let large = Task { try await budget.acquire(50) }
        await eventually("the large request is queued") { budget.suspensions == 1 }
        let small = Flag()
        let smallTask = Task {
            try await budget.acquire(10)
            small.set()
        }
        await eventually("the small request is queued") { budget.suspensions == 2 }
        #expect(!budget.tryAcquire(1))
        budget.release(20)  // 10 would fit, 50 does not
        #expect(budget.used == 80)
        #expect(!small.isSet)
        budget.release(80)
        try await large.value
        try await smallTask.value
        #expect(budget.used == 60)
    }

    @Test func cancellingAWaiterThrowsCancellationErrorAndLeaksNothing() async throws {
        let budget = ByteBudget(limit: 10)
        try await budget.acquire(10)
        let waiter = Task { try await budget.acquire(5) }
        await eventually("the acquire is waiting") { budget.suspensions == 1 }
        waiter.cancel()
        await #expect(throws: CancellationError.self) { try await waiter.value }
        #expect(budget.used == 10)
        budget.release(10)
        #expect(budget.used == 0)
        // The cancelled request holds no place in the queue.
        #expect(budget.tryAcquire(10))
    }

    @Test func anAlreadyCancelledTaskDoesNotWait() async throws {
        let budget = ByteBudget(limit: 10)
        try await budget.acquire(10)
        let waiter = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            try await budget.acquire(5)
        }
        await #expect(throws: CancellationError.self) { try await waiter.value }
        #expect(budget.used == 10)
    }

    @Test func cancellingTheFirstWaiterLetsTheNextOneInWhenItFits() async throws {
        let budget = ByteBudget(limit: 100)
        try await budget.acquire(60)
        let large = Task { try await budget.acquire(50) }
        await eventually("the large request is queued") { budget.suspensions == 1 }
        let small = Task { try await budget.acquire(10) }
        await eventually("the small request is queued behind it") { budget.suspensions == 2 }
        large.cancel()
        await #expect(throws: CancellationError.self) { try await large.value }
        // 60 + 10 fits: the request that waited only behind the cancelled one goes ahead.
        await eventually("the small request is admitted") { budget.used == 70 }
        small.cancel()  // a no-op once admitted; ends the test if it was not
        try await small.value
        #expect(budget.used == 70)
    }

    @Test func raisingTheLimitResumesWaiters() async throws {
        let budget = ByteBudget(limit: 10)
        try await budget.acquire(10)
        let waiter = Task { try await budget.acquire(5) }
        await eventually("the acquire is waiting") { budget.suspensions == 1 }
        budget.setLimit(20)
        try await waiter.value
        #expect(budget.used == 15)
        #expect(budget.limit == 20)
    }
}
