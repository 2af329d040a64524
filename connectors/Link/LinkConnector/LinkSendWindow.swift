import DequeModule

/// The link target's delivery bookkeeping, as a value that ``LinkTarget`` drives under its lock.
///
/// Events go in (a batch queued with its frames, frames taken to send, an acknowledgement, the
/// welcome of a new stream, close); what the target must do comes out (the sequences and waiter
/// of a queued batch, the frames to write, the waiters to resolve or fail, the messages sent
/// again). It calls nothing: no gRPC, no completions, no logging, nothing async. Waiters are
/// plain ids; the target keeps the completions they stand for.
///
/// The promises it keeps:
/// - Every message gets the next sequence number, 1, 2, 3, ...; frames leave in sequence order.
/// - A frame leaves while the credit covers its messages and bytes; when nothing is outstanding
///   on the stream, one frame leaves beyond the credit, so a window smaller than a frame cannot
///   stall the link.
/// - Acknowledgements are cumulative: one through N drops every frame whose last sequence is at
///   most N and resolves the batches whose last frame it covers, in order. One at or below what
///   was already confirmed drops nothing (its credit still counts).
/// - A new stream's welcome drops what its `confirmedThrough` covers, replaces the credit, and
///   sends everything else again from the oldest unacknowledged frame; from the second stream
///   on, those messages count as resent.
/// - Closing refuses new batches and fails every batch still waiting.
struct LinkSendWindow: Sendable {
    /// One frame as the target cut it from a write, before it has a sequence number.
    struct Frame: Sendable {
        var batch: WireBatch
        var count: Int
        var bytes: Int
    }

    /// A batch's place in the window: its sequences and the waiter its last frame resolves.
    struct Queued: Equatable, Sendable {
        var sequences: ClosedRange<UInt64>
        var waiter: UInt64
    }

    /// One frame of the resend buffer: sent, or waiting for credit, until it is acknowledged.
    struct Entry: Sendable {
        var first: UInt64
        var last: UInt64
        var count: Int
        var bytes: Int
        var frame: SenderFrame
        /// The batch waiting for this frame (set on the last frame of a batch).
        var waiter: UInt64?
    }

    private(set) var entries = Deque<Entry>()
    /// Index in `entries` of the first frame not yet sent on the current stream.
    private(set) var unsent = 0
    private(set) var nextSequence: UInt64 = 1
    private(set) var confirmedThrough: UInt64 = 0
    private(set) var creditMessages = 0
    private(set) var creditBytes = 0
    /// Messages sent on the current stream and not yet acknowledged.
    private(set) var outstanding = 0
    private(set) var nextWaiter: UInt64 = 0
    private(set) var closed = false
    /// Streams welcomed so far.
    private(set) var streams = 0
    /// Messages sent again after a reconnect (they may arrive twice at the receiver's targets).
    private(set) var resentMessages = 0

    /// Appends a batch's frames (at least one) with the next sequence numbers; its waiter is
    /// resolved when its last frame is acknowledged. Nil once closed.
    mutating func queue(_ frames: [Frame]) -> Queued? {
        precondition(!frames.isEmpty, "a batch has at least one frame")
        if closed { return nil }
        nextWaiter += 1
        let waiter = nextWaiter
        let first = nextSequence
        for (index, built) in frames.enumerated() {
            var batch = built.batch
            batch.firstSequence = nextSequence
            var frame = SenderFrame()
            frame.batch = batch
            let last = nextSequence + UInt64(built.count) - 1
            entries.append(
                Entry(
                    first: nextSequence, last: last, count: built.count, bytes: built.bytes, frame: frame,
                    waiter: index == frames.count - 1 ? waiter : nil
                ))
            nextSequence = last + 1
        }
        return Queued(sequences: first...(nextSequence - 1), waiter: waiter)
    }

    /// Takes the frames that may be sent now: in sequence order, while credit lasts; one frame
    /// beyond the credit when nothing is outstanding, so a frame larger than the window moves.
    mutating func takeSendable() -> [SenderFrame] {
        var frames: [SenderFrame] = []
        while unsent < entries.count {
            let entry = entries[unsent]
            let fits = creditMessages >= entry.count && creditBytes >= entry.bytes
            if !fits && outstanding > 0 { break }
            creditMessages -= entry.count
            creditBytes -= entry.bytes
            outstanding += entry.count
            unsent += 1
            frames.append(entry.frame)
        }
        return frames
    }

    /// The receiver confirmed every sequence through `through` and returned credit; returns the
    /// waiters to resolve, in order.
    mutating func acknowledged(through: UInt64, creditMessages messages: UInt64, creditBytes bytes: UInt64) -> [UInt64] {
        let done = confirm(through: through)
        creditMessages += Int(clamping: messages)
        creditBytes += Int(clamping: bytes)
        return done
    }

    /// A new stream was welcomed: drops what `confirmedThrough` covers (returns those waiters
    /// to resolve), takes the stream's credit and marks every remaining frame unsent; `resent`
    /// is how many messages go again (none on the first stream).
    mutating func welcomed(confirmedThrough through: UInt64, creditMessages messages: UInt64, creditBytes bytes: UInt64) -> (
        resolved: [UInt64], resent: Int
    ) {
        let done = confirm(through: through)
        unsent = 0
        outstanding = 0
        creditMessages = Int(clamping: messages)
        creditBytes = Int(clamping: bytes)
        streams += 1
        let resent = streams > 1 ? entries.reduce(0) { $0 + $1.count } : 0
        resentMessages += resent
        return (done, resent)
    }

    /// Refuses new batches; returns the waiters to fail (each once).
    mutating func close() -> [UInt64] {
        closed = true
        var waiting: [UInt64] = []
        for index in entries.indices {
            if let waiter = entries[index].waiter { waiting.append(waiter) }
            entries[index].waiter = nil
        }
        return waiting
    }

    /// Drops the frames through `through`; returns their waiters.
    private mutating func confirm(through: UInt64) -> [UInt64] {
        var done: [UInt64] = []
        guard through > confirmedThrough else { return done }
        confirmedThrough = through
        var removed = 0
        while let head = entries.first, head.last <= through {
            entries.removeFirst()
            if removed < unsent { outstanding -= head.count }
            removed += 1
            if let waiter = head.waiter { done.append(waiter) }
        }
        unsent = max(0, unsent - removed)
        if unsent == 0 { outstanding = 0 }
        return done
    }
}
