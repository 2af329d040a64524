/// How a route keeps messages in order on its targets (ARCHITECTURE.md section 3, item 7).
public enum Ordering: String, Sendable, CaseIterable {
    /// In order per source shard (Kafka partition, AMQP channel). The default.
    case partition
    /// In order per message key; different keys may be written in parallel.
    case key
    /// No order; any lane may take any batch.
    case none
}

/// Which messages a route takes: a channel glob and header equality, all of which must hold.
public struct RouteFilter: Sendable {
    public var channel: Glob?
    public var headers: [(name: String, value: [UInt8])]

    public init(channel: Glob? = nil, headers: [(name: String, value: [UInt8])] = []) {
        self.channel = channel
        self.headers = headers
    }

    public var isEmpty: Bool { channel == nil && headers.isEmpty }

    public func matches(_ message: Message) -> Bool {
        if let channel, !channel.matches(message.channel) { return false }
        for header in headers where message.header(header.name) != header.value { return false }
        return true
    }
}

/// A compiled route: `from` sources, `to` targets, an optional filter, an ordering.
public struct Route: Sendable {
    /// `spec.routes[N]` or the route's name.
    public var name: String
    public var from: [String]
    public var to: [String]
    public var filter: RouteFilter
    public var ordering: Ordering

    public init(name: String, from: [String], to: [String], filter: RouteFilter = RouteFilter(), ordering: Ordering = .partition) {
        self.name = name
        self.from = from
        self.to = to
        self.filter = filter
        self.ordering = ordering
    }
}

/// A shell-style pattern: `*` matches any run of characters, `?` one character.
public struct Glob: Sendable, Equatable {
    public let pattern: String
    let characters: [Character]

    public init(_ pattern: String) {
        self.pattern = pattern
        self.characters = Array(pattern)
    }

    public func matches(_ text: String) -> Bool {
        if !pattern.contains("*") && !pattern.contains("?") { return pattern == text }
        let subject = Array(text)
        var p = 0
        var s = 0
        var star = -1
        var mark = 0
        while s < subject.count {
            if p < characters.count && (characters[p] == "?" || characters[p] == subject[s]) {
                p += 1
                s += 1
            } else if p < characters.count && characters[p] == "*" {
                star = p
                mark = s
                p += 1
            } else if star >= 0 {
                p = star + 1
                mark += 1
                s = mark
            } else {
                return false
            }
        }
        while p < characters.count && characters[p] == "*" { p += 1 }
        return p == characters.count
    }
}

/// Batching policy of a target: a batch is written when it holds `maxMessages` messages or
/// `maxBytes` bytes, or `maxDelay` after its first message arrived; at shutdown at once.
public struct BatchingPolicy: Sendable, Equatable {
    public var maxMessages: Int
    public var maxBytes: Int
    public var maxDelay: Duration

    public init(maxMessages: Int = 500, maxBytes: Int = 1 << 20, maxDelay: Duration = .milliseconds(20)) {
        self.maxMessages = maxMessages
        self.maxBytes = maxBytes
        self.maxDelay = maxDelay
    }
}
