import Dispatch

/// Runs blocking work (file I/O, C client calls) on a serial dispatch queue that a connector
/// owns, never on Swift's cooperative thread pool.
public final class BlockingQueue: Sendable {
    let queue: DispatchQueue

    public init(label: String) {
        queue = DispatchQueue(label: label)
    }

    /// Runs `work` on the queue and returns its result; the caller suspends meanwhile.
    public func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                continuation.resume(with: Result { try work() })
            }
        }
    }

    /// Schedules `work` on the queue without waiting for it (work that reschedules itself, so
    /// that what others queued meanwhile runs in between).
    public func schedule(_ work: @escaping @Sendable () -> Void) {
        queue.async(execute: work)
    }

    /// Runs non-throwing `work` on the queue.
    public func run<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            queue.async { continuation.resume(returning: work()) }
        }
    }
}
