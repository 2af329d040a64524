#if canImport(Glibc)
    import Glibc
#endif
import DequeModule
import Synchronization
import SwitchyardCore

/// Deliveries handed from a source's I/O thread to its `run` task, tagged with the connection
/// generation that delivered them.
///
/// Unbounded by itself: the broker's prefetch bounds it (it never holds more than `prefetch`
/// unacknowledged deliveries).
final class DeliveryMailbox: Sendable {
    struct Chunk: Sendable {
        var generation: Int32
        var messages: [Message]
    }

    struct State {
        var chunks = Deque<Chunk>()
        var waiter: CheckedContinuation<Chunk?, Never>?
        var finished = false
    }

    let state = Mutex(State())

    /// Called by the I/O thread.
    func push(_ chunk: Chunk) {
        let waiter = state.withLock { state -> CheckedContinuation<Chunk?, Never>? in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.chunks.append(chunk)
            return nil
        }
        waiter?.resume(returning: chunk)
    }

    /// Drops what a lost connection delivered and nobody took yet (the broker redelivers it).
    func purge(generation: Int32) {
        state.withLock { state in state.chunks.removeAll { $0.generation == generation } }
    }

    /// Whether no chunk waits to be taken.
    var isEmpty: Bool { state.withLock { $0.chunks.isEmpty } }

    /// No more chunks: the waiting `take` returns nil, and so do later ones.
    func finish() {
        let waiter = state.withLock { state -> CheckedContinuation<Chunk?, Never>? in
            state.finished = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: nil)
    }

    /// The next deliveries of one generation, at most `limit` (more when one chunk is larger);
    /// nil once finished or when the task is cancelled.
    func take(limit: Int) async -> Chunk? {
        if let ready = state.withLock({ Self.pop(&$0, limit: limit) }) { return ready }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Chunk?, Never>) in
                let ready: Chunk?? = state.withLock { state in
                    if let chunk = Self.pop(&state, limit: limit) { return .some(chunk) }
                    if state.finished || Task.isCancelled { return .some(nil) }
                    state.waiter = continuation
                    return .none
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Chunk?, Never>? in
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume(returning: nil)
        }
    }

    private static func pop(_ state: inout State, limit: Int) -> Chunk? {
        guard var first = state.chunks.popFirst() else { return nil }
        while let next = state.chunks.first, next.generation == first.generation, first.messages.count + next.messages.count <= limit {
            first.messages.append(contentsOf: next.messages)
            state.chunks.removeFirst()
        }
        return first
    }
}

/// A self-pipe that wakes an I/O thread blocked in `poll` (acknowledgements to send, close).
final class WakePipe: Sendable {
    let readEnd: Int32
    let writeEnd: Int32

    init() {
        var fds: [Int32] = [-1, -1]
        if pipe(&fds) == 0 {
            for fd in fds {
                _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            }
        } else {
            fds = [-1, -1]
        }
        readEnd = fds[0]
        writeEnd = fds[1]
    }

    deinit {
        if readEnd >= 0 { close(readEnd) }
        if writeEnd >= 0 { close(writeEnd) }
    }

    func signal() {
        var byte: UInt8 = 1
        _ = write(writeEnd, &byte, 1)
    }

    func drain() {
        var buffer = [UInt8](repeating: 0, count: 64)
        while read(readEnd, &buffer, 64) > 0 {}
    }
}
