import Synchronization

/// A one-time outcome (a value or an error) that one task waits for and another sets, in either
/// order: a write started now and confirmed later (``PendingWrite``). The first outcome set
/// wins; the waiter is woken with `CancellationError` if its task is cancelled first.
public final class Completion<Value: Sendable>: Sendable {
    struct State {
        var outcome: Result<Value, any Error>?
        var waiter: CheckedContinuation<Value, any Error>?
    }

    let state = Mutex(State())

    public init() {}

    /// Sets the outcome (once; later calls do nothing) and wakes the waiter.
    public func resolve(_ outcome: Result<Value, any Error>) {
        let waiter = state.withLock { state -> CheckedContinuation<Value, any Error>? in
            guard state.outcome == nil else { return nil }
            state.outcome = outcome
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(with: outcome)
    }

    /// Returns when the outcome is set (throwing its error), or throws `CancellationError`.
    public func wait() async throws -> Value {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Value, any Error>) in
                let outcome = state.withLock { state -> Result<Value, any Error>? in
                    if state.outcome == nil { state.waiter = continuation }
                    return state.outcome
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        } onCancel: {
            resolve(.failure(CancellationError()))
        }
    }
}
