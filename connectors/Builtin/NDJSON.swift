import SwitchyardCore

/// Encodes messages as NDJSON: one object per line with key, value, headers, channel,
/// partition, offset and timestamp. Bytes that are valid UTF-8 are written as JSON strings;
/// others as base64 under `keyBase64` / `valueBase64`.
enum NDJSON {
    static func append(_ message: Message, to output: inout [UInt8]) {
        output.append(contentsOf: #"{"key":"#.utf8)
        if let key = message.key {
            appendBytes(key, field: "key", to: &output)
        } else {
            output.append(contentsOf: "null".utf8)
        }
        output.append(contentsOf: #","value":"#.utf8)
        appendBytes(message.value, field: "value", to: &output)
        output.append(contentsOf: #","headers":["#.utf8)
        for (i, header) in message.headers.enumerated() {
            if i > 0 { output.append(UInt8(ascii: ",")) }
            output.append(UInt8(ascii: "["))
            appendString(Array(header.name.utf8), to: &output)
            output.append(UInt8(ascii: ","))
            if String(validating: header.value, as: UTF8.self) != nil {
                appendString(header.value, to: &output)
            } else {
                output.append(contentsOf: #"{"base64":""#.utf8)
                output.append(contentsOf: Base64.encode(header.value))
                output.append(contentsOf: #""}"#.utf8)
            }
            output.append(UInt8(ascii: "]"))
        }
        output.append(contentsOf: #"],"channel":"#.utf8)
        appendString(Array(message.channel.utf8), to: &output)
        output.append(contentsOf: #","partition":"#.utf8)
        output.append(contentsOf: String(message.partition).utf8)
        output.append(contentsOf: #","offset":"#.utf8)
        output.append(contentsOf: String(message.offset).utf8)
        output.append(contentsOf: #","timestamp":"#.utf8)
        output.append(contentsOf: String(message.timestamp).utf8)
        output.append(contentsOf: "}\n".utf8)
    }

    /// Writes `"..."` for UTF-8 bytes, or replaces the `"field":` just written with
    /// `"fieldBase64":"..."`.
    static func appendBytes(_ bytes: [UInt8], field: String, to output: inout [UInt8]) {
        if String(validating: bytes, as: UTF8.self) != nil {
            appendString(bytes, to: &output)
            return
        }
        let label = Array("\"\(field)\":".utf8)
        output.removeLast(label.count)
        output.append(contentsOf: "\"\(field)Base64\":\"".utf8)
        output.append(contentsOf: Base64.encode(bytes))
        output.append(UInt8(ascii: "\""))
    }

    static let hex = Array("0123456789abcdef".utf8)

    static func appendString(_ bytes: [UInt8], to output: inout [UInt8]) {
        output.append(UInt8(ascii: "\""))
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "\""): output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x0A: output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0..<0x20:
                output.append(contentsOf: Array("\\u00".utf8))
                output.append(hex[Int(byte >> 4)])
                output.append(hex[Int(byte & 0xF)])
            default: output.append(byte)
            }
        }
        output.append(UInt8(ascii: "\""))
    }
}

enum Base64 {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func encode(_ bytes: [UInt8]) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index + 3 <= bytes.count {
            let value = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
            for shift in [18, 12, 6, 0] { output.append(alphabet[Int((value >> UInt32(shift)) & 63)]) }
            index += 3
        }
        let rest = bytes.count - index
        if rest > 0 {
            var value = UInt32(bytes[index]) << 16
            if rest == 2 { value |= UInt32(bytes[index + 1]) << 8 }
            output.append(alphabet[Int((value >> 18) & 63)])
            output.append(alphabet[Int((value >> 12) & 63)])
            output.append(rest == 2 ? alphabet[Int((value >> 6) & 63)] : UInt8(ascii: "="))
            output.append(UInt8(ascii: "="))
        }
        return output
    }
}
