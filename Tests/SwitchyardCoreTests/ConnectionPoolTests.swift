import Synchronization
import Testing
@testable import SwitchyardCore

@Suite("Connection pool")
struct ConnectionPoolTests {
    final class Slot: Sendable {
        let id: Int
        let users = Atomic<Int>(0)
        init(_ id: Int) { self.id = id }
    }

    @Test func noConnectionServesTwoWritersAndWaitersAreServedInOrder() async throws {
        let pool = ConnectionPool([Slot(0), Slot(1)])
        final class Counters: Sendable {
            let highest = Atomic<Int>(0)
            let busy = Atomic<Int>(0)
        }
        let counters = Counters()
        try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<20 {
                group.addTask {
                    try await pool.withConnection { slot in
                        let now = counters.busy.add(1, ordering: .sequentiallyConsistent).newValue
                        _ = counters.highest.max(now, ordering: .sequentiallyConsistent)
                        // Two holders of one connection at once would make this 2.
                        #expect(slot.users.add(1, ordering: .sequentiallyConsistent).newValue == 1)
                        try await Task.sleep(for: .milliseconds(2))
                        slot.users.subtract(1, ordering: .sequentiallyConsistent)
                        counters.busy.subtract(1, ordering: .sequentiallyConsistent)
                        return slot.id
                    }
                }
            }
            var seen = Set<Int>()
            for try await id in group { seen.insert(id) }
            #expect(seen == [0, 1])
        }
        #expect(counters.highest.load(ordering: .sequentiallyConsistent) == 2)
        // Every connection is free again: two more holders at once do not wait.
        async let a: Int = pool.withConnection { $0.id }
        async let b: Int = pool.withConnection { $0.id }
        #expect(Set(try await [a, b]).count <= 2)
    }

    @Test func aThrowingWriterGivesItsConnectionBack() async throws {
        struct Boom: Error {}
        let pool = ConnectionPool([Slot(7)])
        await #expect(throws: Boom.self) { try await pool.withConnection { _ in throw Boom() } }
        #expect(try await pool.withConnection { $0.id } == 7)
    }
}
