import DequeModule
import Synchronization

/// Receives the acknowledged prefix of each shard. Implemented by sources.
public protocol AcknowledgementReceiver: AnyObject, Sendable {
    /// Every message of `shard` up to and including `offset` is acknowledged; `count` of them
    /// were released by this call.
    ///
    /// Called with the shard's ledger lock held, so calls for one shard arrive in order. Keep it
    /// short and never block: record the offset, or enqueue the ack for the I/O thread.
    func acknowledge(shard: Int32, through offset: Int64, count: Int)
}

/// The acknowledgement handle of one submitted batch.
///
/// Tracks, per message, how many confirmations are still outstanding (one per target the
/// message was routed to). All mutable state is guarded by the owning ``ShardLedger``'s lock.
public final class AckHandle: @unchecked Sendable {
    let ledger: ShardLedger
    let offsets: [Int64]
    var remaining: [UInt16]
    /// Index of the first message not yet released.
    var prefix = 0
    /// Number of messages whose confirmations are all in.
    var done = 0
    /// Whether the batch's completion was reported to the ``BatchCompletionObserver``.
    var completed = false
    let bytes: Int
    let submittedAt: ContinuousClock.Instant

    init(ledger: ShardLedger, offsets: [Int64], remaining: [UInt16], bytes: Int) {
        self.ledger = ledger
        self.offsets = offsets
        self.remaining = remaining
        self.bytes = bytes
        self.submittedAt = .now
        for count in remaining where count == 0 { done += 1 }
    }

    public var count: Int { offsets.count }

    /// Confirms the messages at `indices` once (one target confirmed them).
    public func confirm(_ indices: some Sequence<Int>) {
        ledger.confirm(self, indices)
    }

    /// Confirms every message of the batch once.
    public func confirmAll() {
        ledger.confirm(self, 0..<offsets.count)
    }

    /// The origin offset of message `index`.
    public func offset(at index: Int) -> Int64 { offsets[index] }
}

/// Called when a batch's last confirmation arrives: frees its bytes from the budget.
public protocol BatchCompletionObserver: AnyObject, Sendable {
    func batchCompleted(messages: Int, bytes: Int)
}

/// The acknowledgement ledger of one source shard.
///
/// Batches are registered in submission order. Confirmations may arrive in any order; the
/// ledger releases to the source only the contiguous prefix of fully confirmed messages, so a
/// message in flight or failed holds back everything after it.
public final class ShardLedger: Sendable {
    /// The source entry name.
    public let source: String
    public let shard: Int32
    let receiver: any AcknowledgementReceiver
    let observer: any BatchCompletionObserver

    struct State {
        var pending = Deque<AckHandle>()
        var drainWaiters: [(id: UInt64, continuation: CheckedContinuation<Void, Never>)] = []
        var nextWaiterID: UInt64 = 0
        var releasedThrough: Int64?
    }

    let state = Mutex(State())

    init(source: String, shard: Int32, receiver: any AcknowledgementReceiver, observer: any BatchCompletionObserver) {
        self.source = source
        self.shard = shard
        self.receiver = receiver
        self.observer = observer
    }

    /// Registers a batch whose message `i` awaits `remaining[i]` confirmations.
    func register(offsets: [Int64], remaining: [UInt16], bytes: Int) -> AckHandle {
        let handle = AckHandle(ledger: self, offsets: offsets, remaining: remaining, bytes: bytes)
        state.withLock { $0.pending.append(handle) }
        // Messages routed nowhere (filtered out) are released at once.
        if handle.done > 0 { confirm(handle, EmptyCollection<Int>()) }
        return handle
    }

    func confirm(_ handle: AckHandle, _ indices: some Sequence<Int>) {
        var completedBytes = 0
        var completedMessages = 0
        var waiters: [CheckedContinuation<Void, Never>] = []
        state.withLock { state in
            for index in indices {
                precondition(handle.remaining[index] > 0, "message confirmed more often than it was routed")
                handle.remaining[index] &-= 1
                if handle.remaining[index] == 0 { handle.done += 1 }
            }
            if !handle.completed && handle.done == handle.count {
                handle.completed = true
                completedBytes = handle.bytes
                completedMessages = handle.count
            }
            var released = 0
            var through: Int64?
            while let head = state.pending.first {
                let start = head.prefix
                while head.prefix < head.count && head.remaining[head.prefix] == 0 { head.prefix += 1 }
                if head.prefix > start {
                    released += head.prefix - start
                    through = head.offsets[head.prefix - 1]
                }
                guard head.prefix == head.count else { break }
                state.pending.removeFirst()
            }
            if let through {
                state.releasedThrough = through
                receiver.acknowledge(shard: shard, through: through, count: released)
            }
            if state.pending.isEmpty && !state.drainWaiters.isEmpty {
                waiters = state.drainWaiters.map(\.continuation)
                state.drainWaiters = []
            }
        }
        if completedMessages > 0 {
            observer.batchCompleted(messages: completedMessages, bytes: completedBytes)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Whether any message of this shard is still unacknowledged.
    public var hasPending: Bool { state.withLock { !$0.pending.isEmpty } }

    /// The offset of the last released message, if any.
    public var releasedThrough: Int64? { state.withLock { $0.releasedThrough } }

    /// When the oldest unacknowledged batch of this shard was submitted.
    var oldestPending: ContinuousClock.Instant? { state.withLock { $0.pending.first?.submittedAt } }

    /// Suspends until every registered message of this shard is acknowledged, or the task is
    /// cancelled (so that a drain bounded by a timeout can give up).
    public func waitUntilDrained() async {
        let id = state.withLock { state -> UInt64 in
            state.nextWaiterID += 1
            return state.nextWaiterID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let ready = state.withLock { state -> Bool in
                    if state.pending.isEmpty || Task.isCancelled { return true }
                    state.drainWaiters.append((id, continuation))
                    return false
                }
                if ready { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
                guard let index = state.drainWaiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.drainWaiters.remove(at: index).continuation
            }
            waiter?.resume()
        }
    }
}

/// The ledgers of all shards of one source.
public final class SourceLedger: Sendable {
    public let source: String
    let receiver: any AcknowledgementReceiver
    let observer: any BatchCompletionObserver
    let shards = Mutex<[Int32: ShardLedger]>([:])

    public init(source: String, receiver: any AcknowledgementReceiver, observer: any BatchCompletionObserver) {
        self.source = source
        self.receiver = receiver
        self.observer = observer
    }

    public func ledger(for shard: Int32) -> ShardLedger {
        shards.withLock { shards in
            if let existing = shards[shard] { return existing }
            let ledger = ShardLedger(source: source, shard: shard, receiver: receiver, observer: observer)
            shards[shard] = ledger
            return ledger
        }
    }

    /// Registers a batch of `shard`; see ``ShardLedger``.
    public func register(shard: Int32, offsets: [Int64], remaining: [UInt16], bytes: Int) -> AckHandle {
        ledger(for: shard).register(offsets: offsets, remaining: remaining, bytes: bytes)
    }

    public var hasPending: Bool {
        let all = shards.withLock { Array($0.values) }
        return all.contains { $0.hasPending }
    }

    /// Age of the oldest unacknowledged message of this source, zero when none.
    public var oldestPendingAge: Duration {
        let all = shards.withLock { Array($0.values) }
        let oldest = all.compactMap(\.oldestPending).min()
        return oldest.map { ContinuousClock.now - $0 } ?? .zero
    }

    /// Suspends until every shard is drained, or the task is cancelled.
    public func waitUntilDrained() async {
        let all = shards.withLock { Array($0.values) }
        for ledger in all { await ledger.waitUntilDrained() }
    }

    /// Suspends until `shard` is drained, or the task is cancelled.
    public func waitUntilDrained(shard: Int32) async {
        let ledger = shards.withLock { $0[shard] }
        await ledger?.waitUntilDrained()
    }
}
