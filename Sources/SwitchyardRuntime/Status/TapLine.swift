import Foundation
import SwitchyardCore

/// One line of a `/tap` stream (NDJSON): a sampled message, a report of the counts, or the end.
/// docs/observability.md documents the format.
public struct TapLine: Codable, Sendable, Equatable {
    public struct Sample: Codable, Sendable, Equatable {
        public struct HeaderField: Codable, Sendable, Equatable {
            public var name: String
            /// nil when redacted (`observability.tap.redactHeaders`).
            public var value: String?
        }

        public var channel: String
        public var partition: Int32
        public var offset: Int64
        /// The position numbering (16 hex digits; all zero where positions are durable).
        public var session: String
        public var timestamp: Int64
        public var key: String?
        public var keyBytes: Int
        public var value: String
        public var valueBytes: Int
        /// Whether key, value or a header value was cut to `maxValueBytes`.
        public var truncated: Bool
        /// `utf8`, or `base64` when the key, value or a header value is not UTF-8 (all of them
        /// are then base64).
        public var encoding: String
        public var headers: [HeaderField]
    }

    public struct Counts: Codable, Sendable, Equatable {
        /// Messages that passed the point while the tap was attached.
        public var seen: Int
        /// Samples written to this stream.
        public var sent: Int
        /// Messages not sampled because the reader was slower than the pipeline.
        public var dropped: Int
        /// On the last line only: why the stream ended (limit, duration, shutdown).
        public var reason: String?
    }

    /// The tap point (`source:NAME`, `route:NAME`, `target:NAME`).
    public var at: String
    public var sample: Sample?
    /// A report of the counts (sent whenever the drop count grew, at most once a second).
    public var counts: Counts?
    /// The final counts; the stream ends after this line.
    public var end: Counts?

    public init(at: String, sample: Sample? = nil, counts: Counts? = nil, end: Counts? = nil) {
        self.at = at
        self.sample = sample
        self.counts = counts
        self.end = end
    }

    public init(at point: TapPoint, _ sample: TapSample) {
        let utf8 =
            Self.isUTF8(sample.value) && sample.key.map(Self.isUTF8) != false
            && sample.headers.allSatisfy { $0.value.map(Self.isUTF8) != false }
        func text(_ bytes: [UInt8]) -> String {
            utf8 ? String(decoding: bytes, as: UTF8.self) : Data(bytes).base64EncodedString()
        }
        let session = String(sample.session, radix: 16)
        self.init(
            at: point.description,
            sample: Sample(
                channel: sample.channel, partition: sample.partition, offset: sample.offset,
                session: String(repeating: "0", count: max(0, 16 - session.count)) + session, timestamp: sample.timestamp,
                key: sample.key.map(text), keyBytes: sample.keyBytes, value: text(sample.value), valueBytes: sample.valueBytes,
                truncated: sample.truncated, encoding: utf8 ? "utf8" : "base64",
                headers: sample.headers.map { Sample.HeaderField(name: $0.name, value: $0.value.map(text)) }))
    }

    static func isUTF8(_ bytes: [UInt8]) -> Bool {
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue: continue
            case .emptyInput: return true
            case .error: return false
            }
        }
    }

    /// The line as NDJSON (ends with a newline).
    public var ndjson: [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var bytes = Array((try? encoder.encode(self)) ?? Data("{}".utf8))
        bytes.append(UInt8(ascii: "\n"))
        return bytes
    }
}
