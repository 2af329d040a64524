#if canImport(Glibc)
    import Glibc
#endif
import CRabbitMQ

/// A value in an AMQP field table (queue arguments, message headers).
enum AMQPFieldValue: Sendable, Equatable {
    case string([UInt8])
    case int(Int64)
    case bool(Bool)
}

/// One rabbitmq-c connection (`amqp_connection_state_t` and its socket).
///
/// rabbitmq-c is not thread-safe: an instance is confined to its owner's thread or serial queue,
/// and every method is called from there. That is why it is `@unchecked Sendable`: it may be
/// handed to the owning queue, never used from two places at once. Deinit closes the socket.
final class AMQPConnection: @unchecked Sendable {
    let state: amqp_connection_state_t
    let settings: AMQPConnectionSettings
    private var destroyed = false

    /// Connects, logs in and opens channel 1. Throws ``AMQPError``.
    init(_ settings: AMQPConnectionSettings) throws(AMQPError) {
        self.settings = settings
        guard let state = amqp_new_connection() else {
            throw AMQPError(kind: .library, code: 0, message: "cannot allocate a connection")
        }
        self.state = state
        do {
            try open()
        } catch {
            destroy()
            throw error
        }
    }

    deinit { destroy() }

    private func open() throws(AMQPError) {
        let url = settings.url
        let socket: OpaquePointer?
        if url.tls {
            socket = amqp_ssl_socket_new(state)
            guard let socket else { throw AMQPError(kind: .library, code: 0, message: "cannot create a TLS socket") }
            if let ca = settings.tls.ca {
                let status = amqp_ssl_socket_set_cacert(socket, ca)
                if status != 0 {
                    throw AMQPError(
                        kind: .configuration, code: Int(status),
                        message: "cannot use tls.ca \(ca): \(String(cString: amqp_error_string2(status)))")
                }
            }
            if let cert = settings.tls.cert, let key = settings.tls.key {
                let status = amqp_ssl_socket_set_key(socket, cert, key)
                if status != 0 {
                    throw AMQPError(
                        kind: .configuration, code: Int(status),
                        message: "cannot use tls.cert/tls.key: \(String(cString: amqp_error_string2(status)))")
                }
            }
            amqp_ssl_socket_set_verify_peer(socket, settings.tls.verify ? 1 : 0)
            amqp_ssl_socket_set_verify_hostname(socket, settings.tls.verify ? 1 : 0)
        } else {
            socket = amqp_tcp_socket_new(state)
            guard socket != nil else { throw AMQPError(kind: .library, code: 0, message: "cannot create a socket") }
        }
        var connectTimeout = Self.timeval(settings.connectTimeout)
        let status = amqp_socket_open_noblock(socket, url.host, Int32(url.port), &connectTimeout)
        if status != AMQP_STATUS_OK.rawValue {
            throw AMQPError.library(status, "cannot connect to \(url.host):\(url.port)")
        }
        var rpcTimeout = Self.timeval(settings.rpcTimeout)
        _ = amqp_set_handshake_timeout(state, &rpcTimeout)
        _ = amqp_set_rpc_timeout(state, &rpcTimeout)
        let reply = switchyard_amqp_login_plain(state, url.vhost, 0, 131_072, Int32(settings.heartbeat), url.user, url.password)
        if var error = AMQPError.from(reply, "login to \(url.redacted) failed") {
            // The broker closes the socket after a refused login; rabbitmq-c then reports a
            // closed connection. A closed connection right after the handshake is almost always
            // refused credentials or vhost.
            if error.kind == .library
                && (error.code == Int(AMQP_STATUS_CONNECTION_CLOSED.rawValue) || error.code == Int(AMQP_STATUS_SOCKET_CLOSED.rawValue))
            {
                error = AMQPError(
                    kind: .connectionClosed, code: 403,
                    message: "login to \(url.redacted) failed: the broker closed the connection (wrong credentials or vhost?)")
            }
            throw error
        }
        try openChannel(1)
    }

    static func timeval(_ duration: Duration) -> timeval {
        let (seconds, attoseconds) = duration.components
        return Glibc.timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
    }

    /// Closes the socket without the AMQP close handshake (after a failure). Idempotent.
    func destroy() {
        guard !destroyed else { return }
        destroyed = true
        amqp_destroy_connection(state)
    }

    /// Closes channel 1 and the connection politely (the broker requeues unacknowledged
    /// deliveries), then frees everything. Errors are ignored: the socket is going away anyway.
    func close() {
        guard !destroyed else { return }
        _ = amqp_channel_close(state, 1, Int32(AMQP_REPLY_SUCCESS))
        _ = amqp_connection_close(state, Int32(AMQP_REPLY_SUCCESS))
        destroy()
    }

    var socketDescriptor: Int32 { amqp_get_sockfd(state) }

    /// Whether frames are already read and waiting in the library's buffers.
    var hasBufferedData: Bool { amqp_frames_enqueued(state) != 0 || amqp_data_in_buffer(state) != 0 }

    func check(_ context: @autoclosure () -> String) throws(AMQPError) {
        if let error = AMQPError.from(amqp_get_rpc_reply(state), context()) { throw error }
    }

    func openChannel(_ channel: amqp_channel_t) throws(AMQPError) {
        _ = amqp_channel_open(state, channel)
        try check("cannot open channel \(channel)")
    }

    func declareExchange(
        _ name: String, type: String, durable: Bool, autoDelete: Bool, internal isInternal: Bool, arguments: [(String, AMQPFieldValue)]
    ) throws(AMQPError) {
        // Names are copied into C memory that lives until the call returned (a String's
        // bridged C pointer lives only for the call it is passed to).
        var arena = CArena()
        defer { arena.free() }
        let nameBytes = arena.bytes(name)
        let typeBytes = arena.bytes(type)
        withTable(arguments) { table in
            _ = amqp_exchange_declare(state, 1, nameBytes, typeBytes, 0, durable ? 1 : 0, autoDelete ? 1 : 0, isInternal ? 1 : 0, table)
        }
        try check("cannot declare exchange '\(name)'")
    }

    /// Declares (or with `passive`, checks) a queue; returns its message and consumer counts.
    @discardableResult
    func declareQueue(
        _ name: String, channel: amqp_channel_t = 1, passive: Bool, durable: Bool = true, exclusive: Bool = false, autoDelete: Bool = false,
        arguments: [(String, AMQPFieldValue)] = []
    ) throws(AMQPError) -> (messages: Int, consumers: Int) {
        var arena = CArena()
        defer { arena.free() }
        let nameBytes = arena.bytes(name)
        let ok = withTable(arguments) { table in
            amqp_queue_declare(state, channel, nameBytes, passive ? 1 : 0, durable ? 1 : 0, exclusive ? 1 : 0, autoDelete ? 1 : 0, table)
        }
        try check(passive ? "queue '\(name)' is not there" : "cannot declare queue '\(name)'")
        guard let ok else { return (0, 0) }
        return (Int(ok.pointee.message_count), Int(ok.pointee.consumer_count))
    }

    func bindQueue(_ queue: String, exchange: String, routingKey: String, arguments: [(String, AMQPFieldValue)]) throws(AMQPError) {
        var arena = CArena()
        defer { arena.free() }
        let queueBytes = arena.bytes(queue)
        let exchangeBytes = arena.bytes(exchange)
        let keyBytes = arena.bytes(routingKey)
        withTable(arguments) { table in
            _ = amqp_queue_bind(state, 1, queueBytes, exchangeBytes, keyBytes, table)
        }
        try check("cannot bind queue '\(queue)' to exchange '\(exchange)' with key '\(routingKey)'")
    }

    func qos(prefetch: Int) throws(AMQPError) {
        _ = amqp_basic_qos(state, 1, 0, UInt16(clamping: prefetch), 0)
        try check("basic.qos failed")
    }

    /// Starts consuming `queue` on channel 1 with manual acknowledgements; returns the tag.
    /// `exclusive`: the broker refuses it (403) while the queue has another consumer, and
    /// refuses every other consumer while this one lives.
    func consume(queue: String, consumerTag: String, exclusive: Bool = false) throws(AMQPError) -> String {
        var arena = CArena()
        defer { arena.free() }
        let ok = amqp_basic_consume(state, 1, arena.bytes(queue), arena.bytes(consumerTag), 0, 0, exclusive ? 1 : 0, amqp_empty_table)
        try check("cannot consume from queue '\(queue)'")
        return ok?.pointee.consumer_tag.string ?? consumerTag
    }

    func confirmSelect() throws(AMQPError) {
        _ = amqp_confirm_select(state, 1)
        try check("confirm.select failed")
    }

    /// basic.ack on channel 1; `multiple` acknowledges every delivery up to `tag`.
    func ack(_ tag: UInt64, multiple: Bool) throws(AMQPError) {
        let status = amqp_basic_ack(state, 1, tag, multiple ? 1 : 0)
        if status != 0 { throw .library(status, "basic.ack failed") }
    }

    /// Waits up to `timeout` for the next frame; nil on timeout.
    func waitFrame(timeout: Duration?) throws(AMQPError) -> amqp_frame_t? {
        var frame = amqp_frame_t()
        let status: Int32
        if let timeout {
            var tv = Self.timeval(timeout)
            status = amqp_simple_wait_frame_noblock(state, &frame, &tv)
        } else {
            status = amqp_simple_wait_frame(state, &frame)
        }
        if status == AMQP_STATUS_TIMEOUT.rawValue { return nil }
        if status != AMQP_STATUS_OK.rawValue { throw .library(status, "reading from the broker failed") }
        return frame
    }

    /// Handles a method frame that is not a delivery or a confirm: a close from the broker is
    /// answered and thrown; everything else is ignored.
    func handleUnexpected(_ frame: amqp_frame_t) throws(AMQPError) {
        guard frame.frame_type == UInt8(AMQP_FRAME_METHOD) else { return }
        let method = frame.payload.method
        switch method.id {
        case amqp_method_number_t(SWITCHYARD_AMQP_CHANNEL_CLOSE):
            let close = method.decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            _ = switchyard_amqp_send_channel_close_ok(state, frame.channel)
            throw AMQPError(
                kind: .channelClosed, code: Int(close.reply_code),
                message: "the broker closed the channel: \(close.reply_code) \(close.reply_text.string)")
        case amqp_method_number_t(SWITCHYARD_AMQP_CONNECTION_CLOSE):
            let close = method.decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            _ = switchyard_amqp_send_connection_close_ok(state)
            throw AMQPError(
                kind: .connectionClosed, code: Int(close.reply_code),
                message: "the broker closed the connection: \(close.reply_code) \(close.reply_text.string)")
        case amqp_method_number_t(SWITCHYARD_AMQP_BASIC_CANCEL):
            throw AMQPError(kind: .channelClosed, code: 0, message: "the broker cancelled the consumer (queue deleted?)")
        default:
            return
        }
    }

    /// Reads the content (header and body frames) that follows a basic.return or basic.deliver.
    func readContent(channel: amqp_channel_t) throws(AMQPError) -> amqp_message_t {
        var message = amqp_message_t()
        let reply = amqp_read_message(state, channel, &message, 0)
        if let error = AMQPError.from(reply, "reading message content failed") { throw error }
        return message
    }
}

/// Builds an `amqp_table_t` whose memory lives for the duration of `body`.
func withTable<T>(_ entries: [(String, AMQPFieldValue)], _ body: (amqp_table_t) throws(AMQPError) -> T) throws(AMQPError) -> T {
    if entries.isEmpty { return try body(amqp_empty_table) }
    var arena = CArena()
    defer { arena.free() }
    let table = arena.table(entries)
    return try body(table)
}

func withTable<T>(_ entries: [(String, AMQPFieldValue)], _ body: (amqp_table_t) -> T) -> T {
    if entries.isEmpty { return body(amqp_empty_table) }
    var arena = CArena()
    defer { arena.free() }
    return body(arena.table(entries))
}

/// C memory for one call into rabbitmq-c (strings, tables); freed all at once.
struct CArena {
    private var allocations: [UnsafeMutableRawPointer] = []

    mutating func bytes(_ value: [UInt8]) -> amqp_bytes_t {
        guard !value.isEmpty else { return amqp_empty_bytes }
        let memory = malloc(value.count)!
        allocations.append(memory)
        value.withUnsafeBytes { memory.copyMemory(from: $0.baseAddress!, byteCount: value.count) }
        return amqp_bytes_t(len: value.count, bytes: memory)
    }

    mutating func bytes(_ value: String) -> amqp_bytes_t { bytes(Array(value.utf8)) }

    mutating func table(_ entries: [(String, AMQPFieldValue)]) -> amqp_table_t {
        guard !entries.isEmpty else { return amqp_empty_table }
        let memory = malloc(MemoryLayout<amqp_table_entry_t>.stride * entries.count)!
        allocations.append(memory)
        let typed = memory.bindMemory(to: amqp_table_entry_t.self, capacity: entries.count)
        for (index, (name, value)) in entries.enumerated() {
            var field = amqp_field_value_t()
            switch value {
            case .string(let text):
                field.kind = UInt8(ascii: "S")
                field.value.bytes = bytes(text)
            case .int(let number):
                field.kind = UInt8(ascii: "l")
                field.value.i64 = number
            case .bool(let flag):
                field.kind = UInt8(ascii: "t")
                field.value.boolean = flag ? 1 : 0
            }
            (typed + index).initialize(to: amqp_table_entry_t(key: bytes(name), value: field))
        }
        return amqp_table_t(num_entries: Int32(entries.count), entries: typed)
    }

    mutating func free() {
        for allocation in allocations { Glibc.free(allocation) }
        allocations = []
    }
}

/// Reads an AMQP field table into name/value pairs as text (numbers and booleans formatted,
/// nested tables and arrays skipped).
func decodeTable(_ table: amqp_table_t) -> [(String, [UInt8])] {
    guard table.num_entries > 0, let entries = table.entries else { return [] }
    var result: [(String, [UInt8])] = []
    result.reserveCapacity(Int(table.num_entries))
    for index in 0..<Int(table.num_entries) {
        let entry = entries[index]
        let name = entry.key.string
        let value = entry.value
        let text: [UInt8]?
        switch value.kind {
        case UInt8(ascii: "S"), UInt8(ascii: "x"): text = value.value.bytes.array
        case UInt8(ascii: "t"): text = Array((value.value.boolean != 0 ? "true" : "false").utf8)
        case UInt8(ascii: "b"): text = Array(String(value.value.i8).utf8)
        case UInt8(ascii: "B"): text = Array(String(value.value.u8).utf8)
        case UInt8(ascii: "s"): text = Array(String(value.value.i16).utf8)
        case UInt8(ascii: "u"): text = Array(String(value.value.u16).utf8)
        case UInt8(ascii: "I"): text = Array(String(value.value.i32).utf8)
        case UInt8(ascii: "i"): text = Array(String(value.value.u32).utf8)
        case UInt8(ascii: "l"), UInt8(ascii: "L"): text = Array(String(value.value.i64).utf8)
        case UInt8(ascii: "T"): text = Array(String(value.value.u64).utf8)
        case UInt8(ascii: "f"): text = Array(String(value.value.f32).utf8)
        case UInt8(ascii: "d"): text = Array(String(value.value.f64).utf8)
        default: text = nil
        }
        if let text { result.append((name, text)) }
    }
    return result
}
