#if canImport(Glibc)
    import Glibc
#endif
import CHiredis
import SwitchyardCore

/// One hiredis connection and the serial queue that every call on it runs on.
///
/// `@unchecked Sendable`: `context` is read and written only by work running on `io`, which is
/// serial, so the C context is never touched by two threads.
final class RedisConnection: @unchecked Sendable {
    let io: BlockingQueue
    let address: RedisAddress
    let timeout: Duration
    var context: UnsafeMutablePointer<redisContext>?
    /// The pipeline being encoded; kept between batches so its capacity is reused.
    var output = RESPEncoder(capacity: 64 * 1024)
    /// Where the pipeline's replies are read and parsed.
    var input = RESPReader(capacity: 64 * 1024)

    init(address: RedisAddress, timeout: Duration, label: String) {
        self.address = address
        self.timeout = timeout
        io = BlockingQueue(label: label)
    }

    deinit {
        if let context { redisFree(context) }
    }

    /// One reply, reduced to what the target needs.
    enum Reply {
        case ok
        case error(String)
    }

    // MARK: calls made on `io` only

    /// Connects, authenticates and selects the database unless already connected.
    func connectIfNeeded() throws {
        if context != nil { return }
        let micros = max(Int(timeout.seconds * 1_000_000), 1000)
        let tv = timeval(tv_sec: micros / 1_000_000, tv_usec: Int(micros % 1_000_000))
        guard let context = redisConnectWithTimeout(address.host, Int32(address.port), tv) else {
            throw ConnectorError.retriable("cannot allocate a redis context")
        }
        if context.pointee.err != 0 {
            let text = Self.errorText(context)
            redisFree(context)
            throw ConnectorError.retriable("cannot connect to redis at \(address.display): \(text)")
        }
        _ = redisSetTimeout(context, tv)
        _ = redisEnableKeepAlive(context)
        self.context = context
        do {
            if let password = address.password {
                var auth: [[UInt8]] = [Array("AUTH".utf8)]
                if let username = address.username { auth.append(Array(username.utf8)) }
                auth.append(Array(password.utf8))
                if case .error(let text) = try roundTrip(auth) {
                    throw ConnectorError.targetDown("redis at \(address.display) refused the credentials: \(text)")
                }
            }
            if address.database != 0 {
                if case .error(let text) = try roundTrip([Array("SELECT".utf8), Array(String(address.database).utf8)]) {
                    throw ConnectorError.targetDown("redis at \(address.display) refused SELECT \(address.database): \(text)")
                }
            }
        } catch {
            disconnect()
            throw error
        }
    }

    func disconnect() {
        if let context { redisFree(context) }
        context = nil
        input.reset()
    }

    /// Sends one command and reads its reply. A lost connection throws `retriable`.
    func roundTrip(_ arguments: [[UInt8]]) throws -> Reply {
        try append(arguments)
        guard let reply = readReply() else { throw lost() }
        return reply
    }

    /// Appends one command, given as its arguments, to the output buffer.
    func append(_ arguments: [[UInt8]]) throws {
        var blob: [UInt8] = []
        var offsets: [Int] = []
        var lengths: [Int] = []
        for argument in arguments {
            offsets.append(blob.count)
            lengths.append(argument.count)
            blob.append(contentsOf: argument)
        }
        try append(blob, offsets, lengths)
    }

    /// A reply with its content, for reading back what was written.
    enum Value {
        case bytes([UInt8])
        case array([Value])
        case integer(Int64)
        case null
        case error(String)

        init(_ reply: UnsafeMutablePointer<redisReply>) {
            let pointee = reply.pointee
            switch Int32(pointee.type) {
            case REDIS_REPLY_STRING, REDIS_REPLY_STATUS:
                self = .bytes(pointee.str.map { Array(UnsafeRawBufferPointer(start: $0, count: pointee.len)) } ?? [])
            case REDIS_REPLY_ERROR:
                self = .error(
                    pointee.str.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: pointee.len), as: UTF8.self) } ?? "error")
            case REDIS_REPLY_INTEGER:
                self = .integer(pointee.integer)
            case REDIS_REPLY_ARRAY:
                self = .array((0..<pointee.elements).map { Value(pointee.element[$0]!) })
            default:
                self = .null
            }
        }
    }

    /// Reads the next reply with its content (flushing the output buffer first); nil after a
    /// connection error, which also drops the connection.
    func readValue() -> Value? {
        guard let context else { return nil }
        var raw: UnsafeMutableRawPointer?
        if redisGetReply(context, &raw) != REDIS_OK || raw == nil { return nil }
        defer { freeReplyObject(raw) }
        return Value(raw!.assumingMemoryBound(to: redisReply.self))
    }

    /// Appends one command to the output buffer; argument `i` is `blob[offsets[i]..<offsets[i] + lengths[i]]`.
    func append(_ blob: [UInt8], _ offsets: [Int], _ lengths: [Int]) throws {
        guard let context else { throw ConnectorError.retriable("not connected to redis at \(address.display)") }
        let status = blob.withUnsafeBufferPointer { buffer -> Int32 in
            // A zero-length blob has no base address; point at a dummy byte then.
            var dummy: UInt8 = 0
            return withUnsafePointer(to: &dummy) { fallback in
                let base = UnsafeRawPointer(buffer.baseAddress ?? fallback)
                var argv: [UnsafePointer<CChar>?] = offsets.map { (base + $0).assumingMemoryBound(to: CChar.self) }
                return argv.withUnsafeMutableBufferPointer { pointers in
                    lengths.withUnsafeBufferPointer { sizes in
                        redisAppendCommandArgv(context, Int32(offsets.count), pointers.baseAddress, sizes.baseAddress)
                    }
                }
            }
        }
        if status != REDIS_OK { throw lost() }
    }

    /// Writes the encoded pipeline in `output` straight to the socket. hiredis's own buffers are
    /// empty here (every command it sent has had its reply read), so the order on the wire is
    /// kept; the replies are read with `pipelinedReply`.
    func sendOutput() throws {
        guard let context else { throw ConnectorError.retriable("not connected to redis at \(address.display)") }
        let fd = context.pointee.fd
        let failure: Int32? = { (buffer: UnsafeRawBufferPointer) -> Int32? in
            var sent = 0
            while sent < buffer.count {
                let count = Glibc.send(fd, buffer.baseAddress! + sent, buffer.count - sent, Int32(MSG_NOSIGNAL))
                if count < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                sent += count
            }
            return nil
        }(output.bytes)
        if let failure {
            let text = failure == EAGAIN || failure == EWOULDBLOCK ? "write timed out" : String(cString: strerror(failure))
            disconnect()
            throw ConnectorError.retriable("lost the connection to redis at \(address.display): \(text)")
        }
    }

    /// The next reply of a pipeline sent with `sendOutput`, parsed from the socket without
    /// hiredis; a broken connection (or a reply that is not RESP2) drops the connection and is
    /// `retriable`.
    func pipelinedReply() -> Result<Reply, ConnectorError> {
        guard let context else { return .failure(.retriable("not connected to redis at \(address.display)")) }
        switch input.next(from: context.pointee.fd) {
        case .ok: return .success(.ok)
        case .error(let text): return .success(.error(text))
        case .failed(let text):
            disconnect()
            return .failure(.retriable("lost the connection to redis at \(address.display): \(text)"))
        }
    }

    /// Reads the next reply (flushing the output buffer first); nil after a connection error,
    /// which also drops the connection.
    func readReply() -> Reply? {
        guard let context else { return nil }
        var raw: UnsafeMutableRawPointer?
        if redisGetReply(context, &raw) != REDIS_OK || raw == nil { return nil }
        defer { freeReplyObject(raw) }
        let reply = raw!.assumingMemoryBound(to: redisReply.self)
        if reply.pointee.type == REDIS_REPLY_ERROR {
            let text =
                reply.pointee.str.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: reply.pointee.len), as: UTF8.self) }
                ?? "error"
            return .error(text)
        }
        return .ok
    }

    /// The error for a broken connection; drops the connection so the next write reconnects.
    func lost() -> ConnectorError {
        let text = context.map(Self.errorText) ?? "not connected"
        disconnect()
        return .retriable("lost the connection to redis at \(address.display): \(text)")
    }

    static func errorText(_ context: UnsafeMutablePointer<redisContext>) -> String {
        let text = withUnsafeBytes(of: context.pointee.errstr) { bytes in
            String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        }
        if context.pointee.err == REDIS_ERR_EOF && text.isEmpty { return "server closed the connection" }
        return text.isEmpty ? "error \(context.pointee.err)" : text
    }
}
