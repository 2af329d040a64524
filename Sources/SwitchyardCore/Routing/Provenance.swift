import Logging
import Metrics
import Synchronization

/// Provenance stamping and loop prevention for a source that reads a named cluster.
///
/// Applied by the router to every submitted message of the source, before routing:
/// - a message whose origin header names a cluster in `skipOrigins`, or whose hop count already
///   reached `maxHops`, is skipped: acknowledged to the source without being written, and
///   counted in `switchyard_source_skipped_messages_total{source,reason}`;
/// - every other message gets the origin header set to `cluster` when it has none (the first
///   cluster a message was bridged from stays its origin) and the hop count header set to one
///   more than it had (absent or not a number counts as 0).
public struct Provenance: Sendable, Equatable {
    /// The cluster this source reads from.
    public var cluster: String?
    /// Messages that originated in these clusters are skipped.
    public var skipOrigins: Set<String>
    public var originHeader: String
    public var hopsHeader: String
    /// A message that already crossed this many bridges is skipped.
    public var maxHops: Int

    public static let defaultOriginHeader = "switchyard-origin"
    public static let defaultHopsHeader = "switchyard-hops"
    public static let defaultMaxHops = 8

    public init(
        cluster: String?, skipOrigins: Set<String> = [], originHeader: String = Provenance.defaultOriginHeader,
        hopsHeader: String = Provenance.defaultHopsHeader, maxHops: Int = Provenance.defaultMaxHops
    ) {
        self.cluster = cluster
        self.skipOrigins = skipOrigins
        self.originHeader = originHeader
        self.hopsHeader = hopsHeader
        self.maxHops = maxHops
    }

    /// Why a message was not routed.
    public enum SkipReason: String, Sendable {
        case origin
        case maxHops = "max_hops"
    }

    /// Decides for one message: returns the reason it is skipped, or stamps it and returns nil.
    public func apply(_ message: inout Message) -> SkipReason? {
        var origin: [UInt8]?
        var hops = 0
        var originIndex: Int?
        var hopsIndex: Int?
        for (index, header) in message.headers.enumerated() {
            if originIndex == nil && header.name == originHeader {
                originIndex = index
                origin = header.value
            } else if hopsIndex == nil && header.name == hopsHeader {
                hopsIndex = index
                hops = Self.parseCount(header.value)
            }
        }
        if let origin, !skipOrigins.isEmpty, skipOrigins.contains(String(decoding: origin, as: UTF8.self)) {
            return .origin
        }
        if hops >= maxHops { return .maxHops }
        guard let cluster else { return nil }
        if originIndex == nil { message.headers.append(Header(originHeader, cluster)) }
        let stamped = Array(String(hops + 1).utf8)
        if let hopsIndex {
            message.headers[hopsIndex].value = stamped
        } else {
            message.headers.append(Header(name: hopsHeader, value: stamped))
        }
        return nil
    }

    static func parseCount(_ bytes: [UInt8]) -> Int {
        var value = 0
        guard !bytes.isEmpty, bytes.count <= 9 else { return 0 }
        for byte in bytes {
            guard byte >= 48 && byte <= 57 else { return 0 }
            value = value * 10 + Int(byte - 48)
        }
        return value
    }
}

/// Counters of messages a source's provenance rules skipped, and a once-per-reason log line.
final class ProvenanceMetrics: Sendable {
    let origin: Counter
    let maxHops: Counter
    let warned = Atomic<Bool>(false)

    init(source: String) {
        origin = Counter(label: MetricNames.sourceSkipped, dimensions: [("source", source), ("reason", Provenance.SkipReason.origin.rawValue)])
        maxHops = Counter(label: MetricNames.sourceSkipped, dimensions: [("source", source), ("reason", Provenance.SkipReason.maxHops.rawValue)])
    }

    func record(origin: Int, maxHops: Int, source: String, limit: Int, logger: Logger) {
        if origin > 0 { self.origin.increment(by: origin) }
        if maxHops > 0 {
            self.maxHops.increment(by: maxHops)
            // A message over the hop limit means a loop the origin rules did not stop: say it
            // once, the counter keeps the tally.
            if !warned.exchange(true, ordering: .relaxed) {
                logger.warning("messages over the hop limit are skipped (a bridge loop?); see switchyard_source_skipped_messages_total", metadata: ["source": "\(source)", "maxHops": "\(limit)"])
            }
        }
    }
}
