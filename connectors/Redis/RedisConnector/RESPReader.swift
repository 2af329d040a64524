#if canImport(Glibc)
    import Glibc
#endif

/// Reads the replies of a pipeline straight from the socket, in large reads, and reduces each
/// to what the target needs: success, or the text of an error reply.
///
/// A reply is one RESP2 value: `+text`, `-error`, `:integer`, `$len` and that many bytes (`$-1`
/// is nil), or `*count` and that many values (nested). Nothing is allocated per reply; only an
/// error's text becomes a `String`.
struct RESPReader: ~Copyable {
    private var storage: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    /// Unparsed bytes are `storage[start..<end]`.
    private var start = 0
    private var end = 0

    init(capacity: Int = 64 * 1024) {
        self.capacity = capacity
        storage = .allocate(capacity: capacity)
    }

    deinit { storage.deallocate() }

    /// Whether bytes are buffered that no reply has consumed yet.
    var hasBufferedBytes: Bool { end > start }

    mutating func reset() {
        start = 0
        end = 0
    }

    enum Outcome {
        case ok
        case error(String)
        /// The connection failed or the server sent something that is not RESP2; the text says
        /// which.
        case failed(String)
    }

    /// The next reply, reading from `fd` as needed (its receive timeout applies).
    mutating func next(from fd: Int32) -> Outcome {
        while true {
            switch parse(at: start) {
            case .complete(let after, let error):
                let text = error.map {
                    String(decoding: UnsafeBufferPointer(start: storage + $0.lowerBound, count: $0.count), as: UTF8.self)
                }
                start = after
                if start == end { reset() }
                return text.map(Outcome.error) ?? .ok
            case .invalid(let reason):
                return .failed("unexpected data from the server: \(reason)")
            case .incomplete:
                if let failure = fill(from: fd) { return .failed(failure) }
            }
        }
    }

    /// Reads more bytes: first moves the unparsed rest to the front, grows when full.
    private mutating func fill(from fd: Int32) -> String? {
        if start > 0 {
            (storage).update(from: storage + start, count: end - start)
            end -= start
            start = 0
        }
        if end == capacity {
            let larger = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity * 2)
            larger.update(from: storage, count: end)
            storage.deallocate()
            storage = larger
            capacity *= 2
        }
        while true {
            let count = recv(fd, storage + end, capacity - end, 0)
            if count > 0 {
                end += count
                return nil
            }
            if count == 0 { return "server closed the connection" }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { return "read timed out" }
            return String(cString: strerror(errno))
        }
    }

    private enum Parse {
        case complete(after: Int, error: Range<Int>?)
        case incomplete
        case invalid(String)
    }

    /// Parses one value at `position`.
    private func parse(at position: Int) -> Parse {
        guard position < end else { return .incomplete }
        let marker = storage[position]
        guard let lineEnd = lineEnd(from: position + 1) else { return .incomplete }
        let after = lineEnd + 2
        switch marker {
        case UInt8(ascii: "+"), UInt8(ascii: ":"):
            return .complete(after: after, error: nil)
        case UInt8(ascii: "-"):
            return .complete(after: after, error: (position + 1)..<lineEnd)
        case UInt8(ascii: "$"):
            guard let length = integer(position + 1, lineEnd) else { return .invalid("a bulk length that is not a number") }
            if length < 0 { return .complete(after: after, error: nil) }
            if after + length + 2 > end { return .incomplete }
            return .complete(after: after + length + 2, error: nil)
        case UInt8(ascii: "*"):
            guard let count = integer(position + 1, lineEnd) else { return .invalid("an array length that is not a number") }
            var cursor = after
            var firstError: Range<Int>?
            for _ in 0..<max(count, 0) {
                switch parse(at: cursor) {
                case .complete(let next, let error):
                    cursor = next
                    if firstError == nil { firstError = error }
                case let other:
                    return other
                }
            }
            return .complete(after: cursor, error: firstError)
        default:
            return .invalid("a reply starting with byte \(marker)")
        }
    }

    /// The index of the CR of the CRLF that ends the line starting at `from`.
    private func lineEnd(from: Int) -> Int? {
        var index = from
        while index + 1 < end {
            if storage[index] == 13 && storage[index + 1] == 10 { return index }
            index += 1
        }
        return nil
    }

    private func integer(_ from: Int, _ to: Int) -> Int? {
        var index = from
        var negative = false
        if index < to && storage[index] == UInt8(ascii: "-") {
            negative = true
            index += 1
        }
        guard index < to && to - index <= 18 else { return nil }
        var value = 0
        while index < to {
            let digit = Int(storage[index]) - 48
            guard digit >= 0 && digit <= 9 else { return nil }
            value = value * 10 + digit
            index += 1
        }
        return negative ? -value : value
    }
}
