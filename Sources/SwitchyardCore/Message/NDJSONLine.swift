/// One message as one line of JSON, the line that the `file` and `s3` targets write (one
/// encoder, so that a message reads the same wherever it was written): `{"key":...,"value":...,"headers":[[name,value]],
/// "channel":...,"partition":...,"offset":...,"timestamp":...}`. Bytes that are not valid
/// UTF-8 are written base64-encoded under `keyBase64` / `valueBase64` (and as
/// `{"base64":"..."}` for a header value).
public enum NDJSONLine {
    public static func append(_ message: Message, to output: inout [UInt8]) {
        output.append(UInt8(ascii: "{"))
        if let key = message.key {
            field("key", key, to: &output)
        } else {
            output.append(contentsOf: #""key":null"#.utf8)
        }
        output.append(UInt8(ascii: ","))
        field("value", message.value, to: &output)
        output.append(contentsOf: #","headers":["#.utf8)
        for (i, header) in message.headers.enumerated() {
            if i > 0 { output.append(UInt8(ascii: ",")) }
            output.append(UInt8(ascii: "["))
            string(Array(header.name.utf8), to: &output)
            output.append(UInt8(ascii: ","))
            if String(validating: header.value, as: UTF8.self) != nil {
                string(header.value, to: &output)
            } else {
                output.append(contentsOf: #"{"base64":""#.utf8)
                Base64Text.encode(header.value, to: &output)
                output.append(contentsOf: #""}"#.utf8)
            }
            output.append(UInt8(ascii: "]"))
        }
        output.append(contentsOf: #"],"channel":"#.utf8)
        string(Array(message.channel.utf8), to: &output)
        output.append(contentsOf: #","partition":"#.utf8)
        output.append(contentsOf: String(message.partition).utf8)
        output.append(contentsOf: #","offset":"#.utf8)
        output.append(contentsOf: String(message.offset).utf8)
        output.append(contentsOf: #","timestamp":"#.utf8)
        output.append(contentsOf: String(message.timestamp).utf8)
        output.append(contentsOf: "}\n".utf8)
    }

    static func field(_ name: String, _ bytes: [UInt8], to output: inout [UInt8]) {
        if String(validating: bytes, as: UTF8.self) != nil {
            output.append(contentsOf: "\"\(name)\":".utf8)
            string(bytes, to: &output)
        } else {
            output.append(contentsOf: "\"\(name)Base64\":\"".utf8)
            Base64Text.encode(bytes, to: &output)
            output.append(UInt8(ascii: "\""))
        }
    }

    public static let hex = Array("0123456789abcdef".utf8)

    static func string(_ bytes: [UInt8], to output: inout [UInt8]) {
        output.append(UInt8(ascii: "\""))
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                output.append(UInt8(ascii: "\\"))
                output.append(byte)
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

/// Standard base64 with padding, appended in place.
public enum Base64Text {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    public static func encode(_ bytes: [UInt8], to output: inout [UInt8]) {
        var index = 0
        while index + 3 <= bytes.count {
            let value = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
            output.append(alphabet[Int((value >> 18) & 63)])
            output.append(alphabet[Int((value >> 12) & 63)])
            output.append(alphabet[Int((value >> 6) & 63)])
            output.append(alphabet[Int(value & 63)])
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
    }
}
