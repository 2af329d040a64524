import DequeModule
import Logging
import Synchronization
import SwitchyardCore

/// One received frame, until every message of it is confirmed by this process's targets.
final class ReceivedFrame {
    let last: UInt64
    var remaining: Int
    let messages: Int
    let bytes: Int

    init(last: UInt64, messages: Int, bytes: Int) {
        self.last = last
        self.remaining = messages
        self.messages = messages
        self.bytes = bytes
    }
}

/// What a link source knows of one sender (a `link` target instance), across its streams.
///
/// Guarded by the ``ReceiverLedger``'s lock.
final class SenderSession: @unchecked Sendable {
    let id: String
    /// The messages' `session`: the sender id is new with every sender instance, whose
    /// sequences start again at 1, so two senders never share a numbering.
    let positionSession: UInt64
    var name: String
    /// Every sequence up to here was handed to the core (received); resends at or below it are
    /// dropped.
    var receivedThrough: UInt64 = 0
    /// Every sequence up to here was confirmed by this process's targets and acknowledged.
    var confirmedThrough: UInt64 = 0
    /// Whether a frame was received (before that, the first frame sets the base).
    var started = false
    /// Frames received and not yet confirmed, in sequence order.
    var frames = Deque<ReceivedFrame>()
    var inflightMessages = 0
    var inflightBytes = 0
    /// The replies of the current stream, and its number.
    var outlet: AsyncStream<ReceiverFrame>.Continuation?
    var stream: UInt64 = 0
    /// The local shard of each sender partition.
    var shards: [Int32: Int32] = [:]
    var lastSeen: ContinuousClock.Instant = .now

    init(id: String, name: String) {
        self.id = id
        positionSession = PositionSession.derived(from: id)
        self.name = name
    }
}

/// Maps the core's per-shard acknowledgements of a link source back to sender sequences.
///
/// Each (sender, partition) pair is a local shard; a message's offset is its link sequence, so
/// the core acknowledges "shard s through sequence q". The ledger turns those into each
/// sender's contiguous confirmed prefix, acknowledges it on the sender's current stream, and
/// grants the confirmed messages' credit back.
final class ReceiverLedger: Sendable {
    /// The messages of one frame submitted as one local batch.
    struct Run {
        let frame: ReceivedFrame
        let sequences: [UInt64]
        var next = 0
    }

    struct State {
        var sessions: [String: SenderSession] = [:]
        var shards: [Int32: (session: SenderSession, runs: Deque<Run>)] = [:]
        var nextShard: Int32 = 0
        var nextStream: UInt64 = 0
        var duplicates = 0
        var refusals = 0
    }

    let source: String
    let window: (messages: Int, bytes: Int)
    let logger: Logger
    let state: Mutex<State>
    /// Sessions kept at most; the oldest idle ones (no stream, nothing in flight) are forgotten.
    let maxSessions = 256

    init(source: String, window: (messages: Int, bytes: Int), logger: Logger) {
        self.source = source
        self.window = window
        self.logger = logger
        self.state = Mutex(State())
    }

    var duplicates: Int { state.withLock { $0.duplicates } }
    var refusals: Int { state.withLock { $0.refusals } }

    func refused() {
        state.withLock { $0.refusals += 1 }
    }

    /// Attaches a stream to its sender's session (replacing an older stream of the same sender)
    /// and returns the welcome: what is confirmed and the credit left in the window.
    func attach(senderID: String, name: String, outlet: AsyncStream<ReceiverFrame>.Continuation) -> (
        session: SenderSession, stream: UInt64, welcome: Switchyard_Link_V1_Welcome
    ) {
        let (session, stream, replaced, welcome) = state.withLock { state in
            let session: SenderSession
            if let known = state.sessions[senderID] {
                session = known
            } else {
                forgetIdleSessions(&state)
                session = SenderSession(id: senderID, name: name)
                state.sessions[senderID] = session
            }
            let replaced = session.outlet
            session.outlet = outlet
            state.nextStream += 1
            session.stream = state.nextStream
            session.lastSeen = .now
            var welcome = Switchyard_Link_V1_Welcome()
            welcome.version = linkProtocolVersion
            welcome.confirmedThrough = session.confirmedThrough
            welcome.creditMessages = UInt64(max(0, window.messages - session.inflightMessages))
            welcome.creditBytes = UInt64(max(0, window.bytes - session.inflightBytes))
            return (session, session.stream, replaced, welcome)
        }
        replaced?.finish()
        return (session, stream, welcome)
    }

    /// Detaches stream `stream` if it is still the session's current one.
    func detach(_ session: SenderSession, stream: UInt64) {
        state.withLock { _ in
            guard session.stream == stream else { return }
            session.outlet = nil
            session.lastSeen = .now
        }
    }

    /// Registers a received frame and returns the local batches to submit (one per partition),
    /// without the messages already received (a resend). Throws on a sequence gap.
    func accept(_ batch: WireBatch, from session: SenderSession) throws -> [Batch] {
        let count = batch.records.count
        guard count > 0 else { return [] }
        return try state.withLock { state -> [Batch] in
            let first = batch.firstSequence
            let last = first + UInt64(count) - 1
            if !session.started {
                session.started = true
                session.receivedThrough = first - 1
                session.confirmedThrough = first - 1
            }
            if last <= session.receivedThrough {
                state.duplicates += count
                return []
            }
            guard first <= session.receivedThrough + 1 else {
                throw LinkProtocolError(message: "sequence gap: expected \(session.receivedThrough + 1), got \(first)")
            }
            let skip = Int(session.receivedThrough + 1 - first)
            state.duplicates += skip
            var bytes = 0
            var order: [Int32] = []
            var byPartition: [Int32: (messages: [Message], sequences: [UInt64])] = [:]
            for index in skip..<count {
                let record = batch.records[index]
                let sequence = first + UInt64(index)
                bytes += LinkWire.chargedBytes(record)
                if byPartition[record.partition] == nil {
                    order.append(record.partition)
                    byPartition[record.partition] = ([], [])
                }
                byPartition[record.partition]!.messages.append(
                    LinkWire.message(record, sequence: sequence, session: session.positionSession))
                byPartition[record.partition]!.sequences.append(sequence)
            }
            let frame = ReceivedFrame(last: last, messages: count - skip, bytes: bytes)
            session.frames.append(frame)
            session.inflightMessages += frame.messages
            session.inflightBytes += bytes
            session.receivedThrough = last
            var batches: [Batch] = []
            for partition in order {
                let entry = byPartition[partition]!
                let shard = localShard(session, partition: partition, in: &state)
                state.shards[shard]!.runs.append(Run(frame: frame, sequences: entry.sequences))
                batches.append(Batch(shard: shard, messages: entry.messages))
            }
            return batches
        }
    }

    func localShard(_ session: SenderSession, partition: Int32, in state: inout State) -> Int32 {
        if let shard = session.shards[partition] { return shard }
        let shard = state.nextShard
        state.nextShard &+= 1
        session.shards[partition] = shard
        state.shards[shard] = (session, Deque())
        return shard
    }

    /// The core confirmed every message of `shard` through sequence `through`.
    func acknowledge(shard: Int32, through: Int64) {
        state.withLock { state in
            guard var entry = state.shards[shard] else { return }
            let sequence = UInt64(bitPattern: through)
            while !entry.runs.isEmpty {
                var run = entry.runs[0]
                while run.next < run.sequences.count && run.sequences[run.next] <= sequence {
                    run.next += 1
                    run.frame.remaining -= 1
                }
                if run.next == run.sequences.count {
                    entry.runs.removeFirst()
                } else {
                    entry.runs[0] = run
                    break
                }
            }
            state.shards[shard] = entry
            let session = entry.session
            var messages = 0
            var bytes = 0
            while let head = session.frames.first, head.remaining == 0 {
                session.frames.removeFirst()
                session.confirmedThrough = head.last
                messages += head.messages
                bytes += head.bytes
            }
            guard messages > 0 else { return }
            session.inflightMessages -= messages
            session.inflightBytes -= bytes
            var ack = Switchyard_Link_V1_Ack()
            ack.confirmedThrough = session.confirmedThrough
            ack.creditMessages = UInt64(messages)
            ack.creditBytes = UInt64(bytes)
            var reply = ReceiverFrame()
            reply.ack = ack
            session.outlet?.yield(reply)
        }
    }

    /// Ends every stream's replies (on close).
    func finishStreams() {
        let outlets = state.withLock { state in
            state.sessions.values.compactMap { session -> AsyncStream<ReceiverFrame>.Continuation? in
                defer { session.outlet = nil }
                return session.outlet
            }
        }
        for outlet in outlets { outlet.finish() }
    }

    func forgetIdleSessions(_ state: inout State) {
        guard state.sessions.count >= maxSessions else { return }
        let idle = state.sessions.values
            .filter { $0.outlet == nil && $0.frames.isEmpty }
            .sorted { $0.lastSeen < $1.lastSeen }
        for session in idle.prefix(state.sessions.count - maxSessions + 1) {
            state.sessions[session.id] = nil
            for shard in session.shards.values { state.shards[shard] = nil }
        }
    }
}

struct LinkProtocolError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
