/// One step of a path into a JSON value.
enum JSONPathComponent: Sendable, Equatable {
    case member(String)
    case index(Int)
}

/// Extracts a value from JSON bytes by path, scanning without building a document tree.
///
/// A string renders as its unescaped text, `null` as empty, and anything else (numbers,
/// booleans, objects, arrays) as its JSON text.
enum JSONPath {
    /// Parses `.a.b[0]['c.d']` (the text after `json`).
    static func parse(_ text: Substring) -> [JSONPathComponent]? {
        var components: [JSONPathComponent] = []
        var rest = text
        while !rest.isEmpty {
            if rest.first == "." {
                rest.removeFirst()
                let name = rest.prefix { $0 != "." && $0 != "[" }
                guard !name.isEmpty else { return nil }
                components.append(.member(String(name)))
                rest = rest.dropFirst(name.count)
            } else if rest.first == "[" {
                guard let close = rest.firstIndex(of: "]") else { return nil }
                let inner = rest[rest.index(after: rest.startIndex)..<close]
                if let index = Int(inner), index >= 0 {
                    components.append(.index(index))
                } else if inner.count >= 2, let quote = inner.first, quote == "'" || quote == "\"", inner.last == quote {
                    components.append(.member(String(inner.dropFirst().dropLast())))
                } else {
                    return nil
                }
                rest = rest[rest.index(after: close)...]
            } else {
                return nil
            }
        }
        return components
    }

    static func extract(_ path: [JSONPathComponent], from bytes: [UInt8]) -> [UInt8]? {
        bytes.withUnsafeBufferPointer { buffer -> [UInt8]? in
            var scanner = JSONScanner(bytes: buffer)
            scanner.skipWhitespace()
            for component in path {
                guard scanner.descend(into: component) else { return nil }
            }
            scanner.skipWhitespace()
            return scanner.renderValue()
        }
    }
}

struct JSONScanner {
    let bytes: UnsafeBufferPointer<UInt8>
    var position = 0

    init(bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    var current: UInt8? { position < bytes.count ? bytes[position] : nil }

    mutating func skipWhitespace() {
        while let byte = current, byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 { position += 1 }
    }

    /// Moves to the value at `component` inside the current value.
    mutating func descend(into component: JSONPathComponent) -> Bool {
        skipWhitespace()
        switch (component, current) {
        case (.member(let name), UInt8(ascii: "{")):
            position += 1
            let wanted = Array(name.utf8)
            while true {
                skipWhitespace()
                if current == UInt8(ascii: "}") { return false }
                guard current == UInt8(ascii: "\""), let key = readString() else { return false }
                skipWhitespace()
                guard current == UInt8(ascii: ":") else { return false }
                position += 1
                skipWhitespace()
                if key == wanted { return true }
                guard skipValue() else { return false }
                skipWhitespace()
                if current == UInt8(ascii: ",") { position += 1 } else { return false }
            }
        case (.index(let wanted), UInt8(ascii: "[")):
            position += 1
            var index = 0
            while true {
                skipWhitespace()
                if current == UInt8(ascii: "]") { return false }
                if index == wanted { return true }
                guard skipValue() else { return false }
                skipWhitespace()
                if current == UInt8(ascii: ",") { position += 1 } else { return false }
                index += 1
            }
        default:
            return false
        }
    }

    /// Reads a string at the current position, unescaping it.
    mutating func readString() -> [UInt8]? {
        guard current == UInt8(ascii: "\"") else { return nil }
        position += 1
        var output: [UInt8] = []
        while let byte = current {
            position += 1
            switch byte {
            case UInt8(ascii: "\""):
                return output
            case UInt8(ascii: "\\"):
                guard let escaped = current else { return nil }
                position += 1
                switch escaped {
                case UInt8(ascii: "n"): output.append(0x0A)
                case UInt8(ascii: "t"): output.append(0x09)
                case UInt8(ascii: "r"): output.append(0x0D)
                case UInt8(ascii: "b"): output.append(0x08)
                case UInt8(ascii: "f"): output.append(0x0C)
                case UInt8(ascii: "u"):
                    guard var scalar = readHex4() else { return nil }
                    if scalar >= 0xD800 && scalar < 0xDC00, current == UInt8(ascii: "\\"), position + 1 < bytes.count,
                        bytes[position + 1] == UInt8(ascii: "u")
                    {
                        position += 2
                        guard let low = readHex4() else { return nil }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low &- 0xDC00)
                    }
                    output.append(contentsOf: String(Character(Unicode.Scalar(scalar) ?? "\u{FFFD}")).utf8)
                default: output.append(escaped)
                }
            default:
                output.append(byte)
            }
        }
        return nil
    }

    mutating func readHex4() -> UInt32? {
        guard position + 4 <= bytes.count else { return nil }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[position]
            position += 1
            let digit: UInt32
            switch byte {
            case 0x30...0x39: digit = UInt32(byte - 0x30)
            case 0x41...0x46: digit = UInt32(byte - 0x41 + 10)
            case 0x61...0x66: digit = UInt32(byte - 0x61 + 10)
            default: return nil
            }
            value = value * 16 + digit
        }
        return value
    }

    /// Skips the value at the current position.
    mutating func skipValue() -> Bool {
        skipWhitespace()
        guard let byte = current else { return false }
        switch byte {
        case UInt8(ascii: "\""):
            return readString() != nil
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            var depth = 0
            while let byte = current {
                switch byte {
                case UInt8(ascii: "\""):
                    guard readString() != nil else { return false }
                    continue
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                    if depth == 0 {
                        position += 1
                        return true
                    }
                default:
                    break
                }
                position += 1
            }
            return false
        default:
            let start = position
            while let byte = current, byte != UInt8(ascii: ","), byte != UInt8(ascii: "}"), byte != UInt8(ascii: "]"),
                byte != 0x20, byte != 0x0A, byte != 0x0D, byte != 0x09
            {
                position += 1
            }
            return position > start
        }
    }

    /// The current value rendered for a template.
    mutating func renderValue() -> [UInt8]? {
        guard let byte = current else { return nil }
        if byte == UInt8(ascii: "\"") { return readString() }
        let start = position
        guard skipValue() else { return nil }
        let text = Array(bytes[start..<position])
        return text == Array("null".utf8) ? [] : text
    }
}
