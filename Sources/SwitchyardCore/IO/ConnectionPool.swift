import Synchronization

/// A fixed set of connections, each used by one writer at a time (the store targets' pools).
///
/// `withConnection` suspends (without blocking a thread) while every connection is busy, and
/// hands the connections out in first-come order.
public final class ConnectionPool<Connection: Sendable>: Sendable {
    struct State: ~Copyable {
        var free: [Int]
        var waiters: [CheckedContinuation<Int, Never>] = []
    }

    public let connections: [Connection]
    let state: Mutex<State>

    public init(_ connections: [Connection]) {
        self.connections = connections
        state = Mutex(State(free: Array(connections.indices.reversed())))
    }

    public func withConnection<T: Sendable>(_ body: (Connection) async throws -> T) async throws -> T {
        let index = await acquire()
        defer { release(index) }
        return try await body(connections[index])
    }

    func acquire() async -> Int {
        if let index = state.withLock({ $0.free.popLast() }) { return index }
        return await withCheckedContinuation { continuation in
            let index = state.withLock { state -> Int? in
                if let index = state.free.popLast() { return index }
                state.waiters.append(continuation)
                return nil
            }
            if let index { continuation.resume(returning: index) }
        }
    }

    func release(_ index: Int) {
        let waiter = state.withLock { state -> CheckedContinuation<Int, Never>? in
            if state.waiters.isEmpty {
                state.free.append(index)
                return nil
            }
            return state.waiters.removeFirst()
        }
        waiter?.resume(returning: index)
    }
}
