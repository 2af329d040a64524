/// One message travelling through Switchyard.
///
/// Byte fields are plain `[UInt8]`: copies share storage (copy on write), so fanning a
/// message out to several targets copies no payload.
public struct Message: Sendable {
    /// The record key; `nil` when the source system has none.
    public var key: [UInt8]?
    public var value: [UInt8]
    /// Ordered name/value pairs; names may repeat.
    public var headers: [Header]
    /// The topic, queue or routing key the message came from.
    public var channel: String
    /// Milliseconds since the Unix epoch.
    public var timestamp: Int64
    /// The shard the message came from (Kafka partition, AMQP channel number, generator shard).
    public var partition: Int32
    /// The position within the shard (Kafka offset, AMQP delivery tag, generator sequence).
    public var offset: Int64
    /// The numbering that `partition` and `offset` belong to. 0 where positions are durable
    /// (a Kafka offset, a generator sequence): the same position always names the same message.
    /// Otherwise a random nonzero identity of whatever numbered them (an AMQP connection, a
    /// link sender), which restarts its numbering: two processes, or one process after a
    /// restart, reuse the same partition and offset for different messages, and only
    /// `(session, partition, offset)` is unique. A key derived from positions must include it.
    public var session: UInt64

    public init(
        key: [UInt8]? = nil,
        value: [UInt8],
        headers: [Header] = [],
        channel: String = "",
        timestamp: Int64 = 0,
        partition: Int32 = 0,
        offset: Int64 = 0,
        session: UInt64 = 0
    ) {
        self.key = key
        self.value = value
        self.headers = headers
        self.channel = channel
        self.timestamp = timestamp
        self.partition = partition
        self.offset = offset
        self.session = session
    }

    /// The bytes this message is charged against the byte budget: the capacity of its buffers
    /// (what the allocator handed out, not just what is used) plus fixed overheads.
    @inlinable
    public var accountedBytes: Int {
        var total = 96 + value.capacity + (key.map { 32 + $0.capacity } ?? 0) + channel.utf8.count
        for header in headers { total += 64 + header.name.utf8.count + header.value.capacity }
        return total
    }

    /// The value of the first header called `name`, if any.
    public func header(_ name: String) -> [UInt8]? {
        headers.first { $0.name == name }?.value
    }
}

/// Identities of position numberings (``Message/session``).
public enum PositionSession {
    /// A fresh random nonzero identity, for a numbering that starts again (a new connection, a
    /// new sender). 64 random bits: two sessions share one with negligible probability.
    public static func random() -> UInt64 {
        UInt64.random(in: 1...UInt64.max)
    }

    /// A stable nonzero identity derived from a text that is itself unique (a sender id),
    /// by FNV-1a.
    public static func derived(from text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return hash == 0 ? 1 : hash
    }

    /// Appends `session` as 16 lowercase hexadecimal digits (fixed width, so keys sort).
    @inlinable
    public static func appendHex(_ session: UInt64, to output: inout [UInt8]) {
        var shift = 60
        while shift >= 0 {
            let digit = UInt8(truncatingIfNeeded: (session >> UInt64(shift)) & 0xF)
            output.append(digit < 10 ? digit &+ 48 : digit &+ 87)
            shift -= 4
        }
    }
}

/// A message header.
public struct Header: Sendable, Equatable {
    public var name: String
    public var value: [UInt8]

    public init(name: String, value: [UInt8]) {
        self.name = name
        self.value = value
    }

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = Array(value.utf8)
    }
}

/// Messages from one source shard, in order. The router gives the batch its acknowledgement
/// handle when the source submits it.
public struct Batch: Sendable {
    /// The shard (Kafka partition, AMQP channel, generator shard) every message belongs to.
    public var shard: Int32
    public var messages: [Message]

    public init(shard: Int32, messages: [Message]) {
        self.shard = shard
        self.messages = messages
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The wall-clock time in milliseconds since the Unix epoch.
public func currentMillis() -> Int64 {
    var spec = timespec()
    clock_gettime(CLOCK_REALTIME, &spec)
    return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000
}
