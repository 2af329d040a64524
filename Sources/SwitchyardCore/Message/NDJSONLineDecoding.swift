extension NDJSONLine {
    /// Reads back a line that ``append(_:to:)`` wrote: key (`null` or absent for none), value,
    /// headers, channel, partition, offset and timestamp, with `keyBase64` / `valueBase64` and
    /// `{"base64": ...}` header values decoded. Members may come in any order; unknown members
    /// are skipped. `nil` when the line is not such an object (the reason is not kept: callers
    /// name the line).
    public static func decode(_ line: UnsafeBufferPointer<UInt8>) -> Message? {
        var scanner = JSONScanner(bytes: line)
        scanner.skipWhitespace()
        guard scanner.current == UInt8(ascii: "{") else { return nil }
        scanner.position += 1
        var message = Message(value: [])
        var sawValue = false
        var sawPosition = (partition: false, offset: false)
        while true {
            scanner.skipWhitespace()
            if scanner.current == UInt8(ascii: "}") {
                scanner.position += 1
                break
            }
            guard let name = scanner.readString() else { return nil }
            scanner.skipWhitespace()
            guard scanner.current == UInt8(ascii: ":") else { return nil }
            scanner.position += 1
            scanner.skipWhitespace()
            switch String(decoding: name, as: UTF8.self) {
            case "key":
                if scanner.current == UInt8(ascii: "n") {
                    guard scanner.readLiteral("null") else { return nil }
                    message.key = nil
                } else {
                    guard let key = scanner.readString() else { return nil }
                    message.key = key
                }
            case "keyBase64":
                guard let text = scanner.readString(), let key = Base64Text.decode(text) else { return nil }
                message.key = key
            case "value":
                guard let value = scanner.readString() else { return nil }
                message.value = value
                sawValue = true
            case "valueBase64":
                guard let text = scanner.readString(), let value = Base64Text.decode(text) else { return nil }
                message.value = value
                sawValue = true
            case "headers":
                guard let headers = scanner.readHeaders() else { return nil }
                message.headers = headers
            case "channel":
                guard let channel = scanner.readString() else { return nil }
                message.channel = String(decoding: channel, as: UTF8.self)
            case "partition":
                guard let number = scanner.readInteger(), let partition = Int32(exactly: number) else { return nil }
                message.partition = partition
                sawPosition.partition = true
            case "offset":
                guard let offset = scanner.readInteger() else { return nil }
                message.offset = offset
                sawPosition.offset = true
            case "timestamp":
                guard let timestamp = scanner.readInteger() else { return nil }
                message.timestamp = timestamp
            default:
                guard scanner.skipValue() else { return nil }
            }
            scanner.skipWhitespace()
            if scanner.current == UInt8(ascii: ",") {
                scanner.position += 1
            } else if scanner.current != UInt8(ascii: "}") {
                return nil
            }
        }
        scanner.skipWhitespace()
        guard scanner.current == nil, sawValue, sawPosition.partition, sawPosition.offset else { return nil }
        return message
    }

    /// ``decode(_:)`` of a line held in an array.
    public static func decode(_ line: [UInt8]) -> Message? {
        line.withUnsafeBufferPointer { decode($0) }
    }
}

extension JSONScanner {
    /// Consumes `literal` (`null`, `true`) at the current position.
    mutating func readLiteral(_ literal: StaticString) -> Bool {
        let count = literal.utf8CodeUnitCount
        guard position + count <= bytes.count else { return false }
        for index in 0..<count where bytes[position + index] != literal.utf8Start[index] { return false }
        position += count
        return true
    }

    /// A JSON integer (optionally negative) that fits an Int64.
    mutating func readInteger() -> Int64? {
        var negative = false
        if current == UInt8(ascii: "-") {
            negative = true
            position += 1
        }
        var value: Int64 = 0
        var digits = 0
        while let byte = current, byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") {
            let (times, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) =
                negative ? times.subtractingReportingOverflow(Int64(byte - 0x30)) : times.addingReportingOverflow(Int64(byte - 0x30))
            if overflow1 || overflow2 { return nil }
            value = sum
            digits += 1
            position += 1
        }
        return digits > 0 ? value : nil
    }

    /// `[[name, value], ...]` where a value is a string or `{"base64": "..."}`.
    mutating func readHeaders() -> [Header]? {
        guard current == UInt8(ascii: "[") else { return nil }
        position += 1
        var headers: [Header] = []
        while true {
            skipWhitespace()
            if current == UInt8(ascii: "]") {
                position += 1
                return headers
            }
            guard current == UInt8(ascii: "[") else { return nil }
            position += 1
            skipWhitespace()
            guard let name = readString() else { return nil }
            skipWhitespace()
            guard current == UInt8(ascii: ",") else { return nil }
            position += 1
            skipWhitespace()
            let value: [UInt8]
            if current == UInt8(ascii: "{") {
                position += 1
                skipWhitespace()
                guard readString() == Array("base64".utf8) else { return nil }
                skipWhitespace()
                guard current == UInt8(ascii: ":") else { return nil }
                position += 1
                skipWhitespace()
                guard let text = readString(), let decoded = Base64Text.decode(text) else { return nil }
                skipWhitespace()
                guard current == UInt8(ascii: "}") else { return nil }
                position += 1
                value = decoded
            } else {
                guard let text = readString() else { return nil }
                value = text
            }
            skipWhitespace()
            guard current == UInt8(ascii: "]") else { return nil }
            position += 1
            headers.append(Header(name: String(decoding: name, as: UTF8.self), value: value))
            skipWhitespace()
            if current == UInt8(ascii: ",") {
                position += 1
            } else if current != UInt8(ascii: "]") {
                return nil
            }
        }
    }
}

extension Base64Text {
    /// Standard base64 with padding; `nil` on a character outside the alphabet or a bad length.
    public static func decode(_ text: [UInt8]) -> [UInt8]? {
        guard text.count % 4 == 0 else { return nil }
        var output: [UInt8] = []
        output.reserveCapacity(text.count / 4 * 3)
        var index = 0
        while index < text.count {
            var value: UInt32 = 0
            var padding = 0
            for offset in 0..<4 {
                let byte = text[index + offset]
                let digit: UInt32
                switch byte {
                case UInt8(ascii: "A")...UInt8(ascii: "Z"): digit = UInt32(byte - UInt8(ascii: "A"))
                case UInt8(ascii: "a")...UInt8(ascii: "z"): digit = UInt32(byte - UInt8(ascii: "a")) + 26
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0")) + 52
                case UInt8(ascii: "+"): digit = 62
                case UInt8(ascii: "/"): digit = 63
                case UInt8(ascii: "=") where offset >= 2 && index + 4 == text.count:
                    padding += 1
                    digit = 0
                default: return nil
                }
                // Padding only at the end of the last group.
                if padding > 0 && byte != UInt8(ascii: "=") { return nil }
                value = value << 6 | digit
            }
            output.append(UInt8(truncatingIfNeeded: value >> 16))
            if padding < 2 { output.append(UInt8(truncatingIfNeeded: value >> 8)) }
            if padding < 1 { output.append(UInt8(truncatingIfNeeded: value)) }
            index += 4
        }
        return output
    }
}
