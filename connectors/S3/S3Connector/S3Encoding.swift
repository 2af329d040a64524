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
        case .ndjson: NDJSONLine.append(message, to: &output)
        case .raw: output.append(contentsOf: message.value)
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
            text.append(Character(Unicode.Scalar(NDJSONLine.hex[Int(byte >> 4)])))
            text.append(Character(Unicode.Scalar(NDJSONLine.hex[Int(byte & 0xF)])))
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

    /// Decompresses gzip data (every member), refusing more than `limit` bytes of output;
    /// `nil` with the zlib error code on corrupt, truncated or oversized input.
    static func gunzip(_ bytes: [UInt8], limit: Int) -> Result<[UInt8], GunzipFailure> {
        var out: UnsafeMutablePointer<UInt8>?
        var length = 0
        let rc = bytes.withUnsafeBufferPointer { input in
            sy_gunzip(input.baseAddress, input.count, limit, &out, &length)
        }
        guard rc == 0, let out else {
            return .failure(GunzipFailure(oversized: rc == Z_BUF_ERROR, code: rc))
        }
        defer { free(out) }
        return .success(Array(UnsafeBufferPointer(start: out, count: length)))
    }

    struct GunzipFailure: Error {
        var oversized: Bool
        var code: Int32
    }
}
