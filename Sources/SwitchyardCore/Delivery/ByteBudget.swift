import DequeModule
import Synchronization

/// The process-wide byte budget (`delivery.memoryLimit`).
///
/// In-flight messages, batches being assembled and client prefetch are charged here. When the
/// budget is spent, ``acquire(_:)`` suspends its caller (a source) until bytes are released.
/// A request larger than the whole budget is admitted when nothing else is in use, so one
/// oversized batch cannot deadlock the pipeline.
public final class ByteBudget: Sendable {
    struct Waiter {
        let id: UInt64
        let bytes: Int
        let continuation: CheckedContinuation<Void, any Error>
    }

    struct State {
        var limit: Int
        var used = 0
        var peak = 0
        var waiters = Deque<Waiter>()
        var nextID: UInt64 = 0
        var suspensions: UInt64 = 0
    }

    let state: Mutex<State>

    public init(limit: Int) {
        state = Mutex(State(limit: max(1, limit)))
    }

    public var limit: Int { state.withLock { $0.limit } }
    public var used: Int { state.withLock { $0.used } }
    /// The highest `used` seen since start.
    public var peak: Int { state.withLock { $0.peak } }
    /// How many times a caller had to wait.
    public var suspensions: UInt64 { state.withLock { $0.suspensions } }

    /// Changes the limit (hot reload); waiters that now fit are resumed.
    public func setLimit(_ limit: Int) {
        let ready = state.withLock { state in
            state.limit = max(1, limit)
            return Self.admit(&state)
        }
        for waiter in ready { waiter.resume() }
    }

    /// Takes `bytes` without waiting; returns false when they do not fit.
    public func tryAcquire(_ bytes: Int) -> Bool {
        state.withLock { state in
            guard state.waiters.isEmpty, Self.fits(bytes, state) else { return false }
            state.used += bytes
            state.peak = max(state.peak, state.used)
            return true
        }
    }

    /// Takes `bytes`, suspending while the budget is spent. Throws `CancellationError` when the
    /// waiting task is cancelled.
    public func acquire(_ bytes: Int) async throws {
        if tryAcquire(bytes) { return }
        let id = state.withLock { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let admitted = state.withLock { state -> Bool in
                    if state.waiters.isEmpty && Self.fits(bytes, state) {
                        state.used += bytes
                        state.peak = max(state.peak, state.used)
                        return true
                    }
                    state.suspensions += 1
                    state.waiters.append(Waiter(id: id, bytes: bytes, continuation: continuation))
                    return false
                }
                if admitted { continuation.resume() }
                if Task.isCancelled { self.cancel(id) }
            }
        } onCancel: {
            self.cancel(id)
        }
    }

    /// Gives back `bytes`; resumes waiters that now fit, in arrival order.
    public func release(_ bytes: Int) {
        let ready = state.withLock { state in
            state.used -= bytes
            return Self.admit(&state)
        }
        for continuation in ready { continuation.resume() }
    }

    private func cancel(_ id: UInt64) {
        let (waiter, ready) = state.withLock { state -> (Waiter?, [CheckedContinuation<Void, any Error>]) in
            guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return (nil, []) }
            let waiter = state.waiters.remove(at: index)
            // Waiters queued behind the cancelled one may fit now.
            return (waiter, Self.admit(&state))
        }
        waiter?.continuation.resume(throwing: CancellationError())
        for continuation in ready { continuation.resume() }
    }

    private static func fits(_ bytes: Int, _ state: State) -> Bool {
        state.used + bytes <= state.limit || state.used == 0
    }

    private static func admit(_ state: inout State) -> [CheckedContinuation<Void, any Error>] {
        var ready: [CheckedContinuation<Void, any Error>] = []
        while let first = state.waiters.first, fits(first.bytes, state) {
            state.waiters.removeFirst()
            state.used += first.bytes
            state.peak = max(state.peak, state.used)
            ready.append(first.continuation)
        }
        return ready
    }
}
