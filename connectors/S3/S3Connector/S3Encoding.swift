#if canImport(Glibc)
import Glibc
#endif
import CZlib
import Crypto
import SwitchyardCore

/// How messages become object content.
enum S3Format: String, Sendable {
    /// One JSON object per line: key, value, headers, channel, partition, offset, timestamp.
    case ndjson
    /// The values, joined by the separator.
    case raw
}

enum S3Compression: String, Sendable {
    case none
    case gzip
}

/// Encodes messages into object bodies.
struct S3Encoder: Sendable {
    let format: S3Format
    let separator: [UInt8]

    /// The bytes between two messages of an object: the separator for raw, nothing for NDJSON
    /// (each line ends with its newline).
    var between: [UInt8] { format == .raw ? separator : [] }

    /// Appends the encoding of `message` (without separator).
    func encode(_ message: Message, into output: inout [UInt8]) {
        switch format {
        case .ndjson: S3NDJSON.append(message, to: &output)
        case .raw: output.append(contentsOf: message.value)
        }
    }
}

/// The NDJSON line shape of the `file` target: `{"key":...,"value":...,"headers":[[name,value]],
/// "channel":...,"partition":...,"offset":...,"timestamp":...}`. Bytes that are not valid
/// UTF-8 are written base64-encoded under `keyBase64` / `valueBase64` (and as
/// `{"base64":"..."}` for a header value).
enum S3NDJSON {
    static func append(_ message: Message, to output: inout [UInt8]) {
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
                S3Base64.encode(header.value, to: &output)
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
            S3Base64.encode(bytes, to: &output)
            output.append(UInt8(ascii: "\""))
        }
    }

    static let hex = Array("0123456789abcdef".utf8)

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

enum S3Base64 {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func encode(_ bytes: [UInt8], to output: inout [UInt8]) {
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

/// SHA-256 (swift-crypto) and gzip (zlib, through CZlib).
enum S3Digest {
    /// The lowercase hex SHA-256 of `bytes`.
    static func sha256Hex(_ bytes: [UInt8]) -> String {
        let digest = SHA256.hash(data: bytes)
        var text = ""
        text.reserveCapacity(64)
        for byte in digest {
            text.append(Character(Unicode.Scalar(S3NDJSON.hex[Int(byte >> 4)])))
            text.append(Character(Unicode.Scalar(S3NDJSON.hex[Int(byte & 0xF)])))
        }
        return text
    }

    /// Compresses `bytes` as one gzip member.
    static func gzip(_ bytes: [UInt8], level: Int32 = 6) throws(ConnectorError) -> [UInt8] {
        var out: UnsafeMutablePointer<UInt8>?
        var length = 0
        let rc = bytes.withUnsafeBufferPointer { input in
            sy_gzip(input.baseAddress, input.count, level, &out, &length)
        }
        guard rc == 0, let out else {
            throw ConnectorError.retriable("gzip compression failed (zlib error \(rc))")
        }
        defer { free(out) }
        return Array(UnsafeBufferPointer(start: out, count: length))
    }
}
