import DequeModule
import Synchronization

/// Where a tap samples messages: what a source submitted, what a route took, or what a target
/// wrote. Written `source:NAME`, `route:NAME` or `target:NAME`.
public struct TapPoint: Hashable, Sendable, CustomStringConvertible {
    public enum Role: String, Sendable, CaseIterable {
        case source, route, target
    }

    public var role: Role
    public var name: String

    public init(_ role: Role, _ name: String) {
        self.role = role
        self.name = name
    }

    /// Parses `ROLE:NAME`; nil when the role is unknown or the name empty.
    public init?(parsing text: String) {
        guard let colon = text.firstIndex(of: ":"), let role = Role(rawValue: String(text[..<colon])) else { return nil }
        let name = String(text[text.index(after: colon)...])
        guard !name.isEmpty else { return nil }
        self.init(role, name)
    }

    public var description: String { "\(role.rawValue):\(name)" }
}

/// `observability.tap`: whether live messages may be sampled, and how.
public struct TapSettings: Sendable, Equatable {
    public var enabled: Bool
    /// Samples one tap holds for a slow reader; beyond it samples are dropped and counted.
    public var buffer: Int
    /// Bytes of a key, value or header value kept per sample.
    public var maxValueBytes: Int
    /// Header names (case-insensitive) whose values are replaced by `[redacted]`.
    public var redactHeaders: [String]
    /// Taps attached at once.
    public var maxTaps: Int

    public init(enabled: Bool = false, buffer: Int = 1000, maxValueBytes: Int = 256, redactHeaders: [String] = [], maxTaps: Int = 4) {
        self.enabled = enabled
        self.buffer = buffer
        self.maxValueBytes = maxValueBytes
        self.redactHeaders = redactHeaders
        self.maxTaps = maxTaps
    }
}

/// One sampled message: positions, and key, value and headers cut to the tap's byte limit.
public struct TapSample: Sendable {
    public var channel: String
    public var partition: Int32
    public var offset: Int64
    public var session: UInt64
    public var timestamp: Int64
    public var key: [UInt8]?
    public var keyBytes: Int
    public var value: [UInt8]
    public var valueBytes: Int
    /// Header values cut to the limit; redacted ones are nil.
    public var headers: [(name: String, value: [UInt8]?)]
    /// Whether the key, the value or a header value was cut.
    public var truncated: Bool

    init(_ message: Message, limit: Int, redact: Set<String>) {
        var truncated = false
        /// At most `limit` bytes, not ending inside a UTF-8 sequence.
        func cut(_ bytes: [UInt8]) -> [UInt8] {
            guard bytes.count > limit else { return bytes }
            truncated = true
            var end = limit
            while end > 0 && end > limit - 4 && bytes[end] & 0xC0 == 0x80 { end -= 1 }
            return Array(bytes[..<end])
        }
        channel = message.channel
        partition = message.partition
        offset = message.offset
        session = message.session
        timestamp = message.timestamp
        key = message.key.map(cut)
        keyBytes = message.key?.count ?? 0
        value = cut(message.value)
        valueBytes = message.value.count
        headers = message.headers.map { header in
            (header.name, redact.contains(header.name.lowercased()) ? nil : cut(header.value))
        }
        self.truncated = truncated
    }
}

/// One attached reader: a bounded buffer that the pipeline fills without ever waiting and the
/// reader empties. When it is full, samples are dropped and counted, so that
/// `seen == sent + dropped + buffered` holds at every moment.
public final class TapSubscription: Sendable {
    public struct Counts: Sendable, Equatable {
        /// Messages that passed the point while the tap was attached.
        public var seen = 0
        /// Samples handed to the reader.
        public var sent = 0
        /// Messages not sampled because the buffer was full.
        public var dropped = 0
        /// Samples waiting in the buffer.
        public var buffered = 0
    }

    struct State {
        var samples = Deque<TapSample>()
        var counts = Counts()
        var closed = false
    }

    public let point: TapPoint
    let capacity: Int
    let limit: Int
    let redact: Set<String>
    let state = Mutex(State())

    init(point: TapPoint, settings: TapSettings) {
        self.point = point
        capacity = max(1, settings.buffer)
        limit = max(0, settings.maxValueBytes)
        redact = Set(settings.redactHeaders.map { $0.lowercased() })
    }

    func offer(_ messages: [Message], where include: (Int) -> Bool = { _ in true }) {
        state.withLock { state in
            for index in messages.indices where include(index) {
                state.counts.seen += 1
                if state.samples.count < capacity {
                    state.samples.append(TapSample(messages[index], limit: limit, redact: redact))
                } else {
                    state.counts.dropped += 1
                }
            }
        }
    }

    /// Takes up to `max` buffered samples (counted as sent).
    public func take(max: Int = .max) -> [TapSample] {
        state.withLock { state in
            let count = Swift.min(max, state.samples.count)
            guard count > 0 else { return [] }
            let taken = Array(state.samples.prefix(count))
            state.samples.removeFirst(count)
            state.counts.sent += count
            return taken
        }
    }

    public var counts: Counts {
        state.withLock { state in
            var counts = state.counts
            counts.buffered = state.samples.count
            return counts
        }
    }

    /// Whether the hub detached the tap (the process is stopping).
    public var isClosed: Bool { state.withLock { $0.closed } }
}

/// The taps of one process. The pipeline asks ``isActive`` (one relaxed load) before doing any
/// work for taps, so a process without a reader pays nothing else.
public final class TapHub: Sendable {
    public enum Refusal: Error, Sendable, CustomStringConvertible {
        case disabled
        case unknownPoint(TapPoint, known: [String])
        case tooMany(Int)

        public var description: String {
            switch self {
            case .disabled: "tap is off: the document must enable it (observability.tap.enabled: true)"
            case .unknownPoint(let point, let known):
                "no \(point.role.rawValue) is named '\(point.name)' (points: \(known.joined(separator: ", ")))"
            case .tooMany(let limit): "\(limit) taps are attached already (observability.tap.maxTaps)"
            }
        }
    }

    struct State {
        var settings = TapSettings()
        var points: Set<TapPoint> = []
        var subscriptions: [ObjectIdentifier: TapSubscription] = [:]
    }

    let active = Atomic<Int>(0)
    let state = Mutex(State())

    public init() {}

    public var isActive: Bool { active.load(ordering: .relaxed) > 0 }

    /// Sets what may be tapped (called when a document is applied).
    public func configure(_ settings: TapSettings, points: Set<TapPoint>) {
        let detached = state.withLock { state -> [TapSubscription] in
            state.settings = settings
            state.points = points
            guard !settings.enabled else { return [] }
            defer { state.subscriptions = [:] }
            return Array(state.subscriptions.values)
        }
        for subscription in detached { close(subscription) }
        if !detached.isEmpty { active.store(0, ordering: .relaxed) }
    }

    public var settings: TapSettings { state.withLock { $0.settings } }

    public func subscribe(_ point: TapPoint) -> Result<TapSubscription, Refusal> {
        let result = state.withLock { state -> Result<TapSubscription, Refusal> in
            guard state.settings.enabled else { return .failure(.disabled) }
            guard state.points.contains(point) else {
                return .failure(.unknownPoint(point, known: state.points.map(\.description).sorted()))
            }
            guard state.subscriptions.count < state.settings.maxTaps else { return .failure(.tooMany(state.settings.maxTaps)) }
            let subscription = TapSubscription(point: point, settings: state.settings)
            state.subscriptions[ObjectIdentifier(subscription)] = subscription
            return .success(subscription)
        }
        if case .success = result { active.add(1, ordering: .relaxed) }
        return result
    }

    public func unsubscribe(_ subscription: TapSubscription) {
        let removed = state.withLock { $0.subscriptions.removeValue(forKey: ObjectIdentifier(subscription)) != nil }
        if removed { active.subtract(1, ordering: .relaxed) }
        close(subscription)
    }

    /// Detaches every tap (shutdown): readers get their final counts.
    public func closeAll() {
        let all = state.withLock { state in
            defer { state.subscriptions = [:] }
            return Array(state.subscriptions.values)
        }
        active.store(0, ordering: .relaxed)
        for subscription in all { close(subscription) }
    }

    func close(_ subscription: TapSubscription) {
        subscription.state.withLock { $0.closed = true }
    }

    func subscriptions(at point: TapPoint) -> [TapSubscription] {
        state.withLock { $0.subscriptions.values.filter { $0.point == point } }
    }

    /// Whether a tap is attached at `point`.
    public func isTapped(_ point: TapPoint) -> Bool {
        isActive && state.withLock { $0.subscriptions.values.contains { $0.point == point } }
    }

    /// Offers messages that passed `point`; `include` selects which of them.
    public func offer(_ point: TapPoint, _ messages: [Message], where include: (Int) -> Bool = { _ in true }) {
        guard isActive else { return }
        for subscription in subscriptions(at: point) {
            subscription.offer(messages, where: include)
        }
    }

    /// The attached taps and their counts (for `/status`).
    public var attached: [(point: TapPoint, counts: TapSubscription.Counts)] {
        state.withLock { Array($0.subscriptions.values) }.map { ($0.point, $0.counts) }
    }
}
