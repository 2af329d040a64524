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
///   more than it had (absent or not a number counts as 0);
/// - and, when `stampsPosition` is on and the message's position is durable (`session` 0, a
///   Kafka offset), its source position: `cluster`, topic (the channel), partition and offset
///   in the ``SourcePosition`` headers, replacing those of an earlier hop, so that a record on
///   the target names the record it was copied from (offset translation relies on it).
public struct Provenance: Sendable, Equatable {
    /// The cluster this source reads from.
    public var cluster: String?
    /// Messages that originated in these clusters are skipped.
    public var skipOrigins: Set<String>
    public var originHeader: String
    public var hopsHeader: String
    /// A message that already crossed this many bridges is skipped.
    public var maxHops: Int
    /// Whether messages with durable positions get the ``SourcePosition`` headers.
    public var stampsPosition: Bool

    public static let defaultOriginHeader = "switchyard-origin"
    public static let defaultHopsHeader = "switchyard-hops"
    public static let defaultMaxHops = 8

    public init(
        cluster: String?, skipOrigins: Set<String> = [], originHeader: String = Provenance.defaultOriginHeader,
        hopsHeader: String = Provenance.defaultHopsHeader, maxHops: Int = Provenance.defaultMaxHops,
        stampsPosition: Bool = true
    ) {
        self.stampsPosition = stampsPosition
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
        var positionHeaders = false
        for (index, header) in message.headers.enumerated() {
            if originIndex == nil && header.name == originHeader {
                originIndex = index
                origin = header.value
            } else if hopsIndex == nil && header.name == hopsHeader {
                hopsIndex = index
                hops = Self.parseCount(header.value)
            } else if header.name.utf8.starts(with: SourcePosition.headerPrefix.utf8) {
                positionHeaders = true
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
        if stampsPosition && message.session == 0 {
            if positionHeaders { message.headers.removeAll { SourcePosition.headerNames.contains($0.name) } }
            SourcePosition(cluster: cluster, topic: message.channel, partition: message.partition, offset: message.offset).append(
                to: &message.headers)
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

/// Where a bridged record was copied from: the cluster its bridge read (the source's
/// `cluster`), topic, partition and offset. Carried in four headers, written by
/// ``Provenance`` (one bridge hop: an earlier hop's are replaced) and read back by offset
/// translation and reconciliation. Numbers are decimal text.
public struct SourcePosition: Sendable, Hashable, CustomStringConvertible {
    public var cluster: String
    public var topic: String
    public var partition: Int32
    public var offset: Int64

    public static let headerPrefix = "switchyard-source-"
    public static let clusterHeader = "switchyard-source-cluster"
    public static let topicHeader = "switchyard-source-topic"
    public static let partitionHeader = "switchyard-source-partition"
    public static let offsetHeader = "switchyard-source-offset"
    public static let headerNames: Set<String> = [clusterHeader, topicHeader, partitionHeader, offsetHeader]

    public init(cluster: String, topic: String, partition: Int32, offset: Int64) {
        self.cluster = cluster
        self.topic = topic
        self.partition = partition
        self.offset = offset
    }

    /// Reads the four headers (the first of each name); nil when one is missing or a number
    /// does not parse.
    public init?(headers: [Header]) {
        var cluster: String?
        var topic: String?
        var partition: Int32?
        var offset: Int64?
        for header in headers where header.name.utf8.starts(with: Self.headerPrefix.utf8) {
            switch header.name {
            case Self.clusterHeader where cluster == nil: cluster = String(decoding: header.value, as: UTF8.self)
            case Self.topicHeader where topic == nil: topic = String(decoding: header.value, as: UTF8.self)
            case Self.partitionHeader where partition == nil: partition = Int32(String(decoding: header.value, as: UTF8.self))
            case Self.offsetHeader where offset == nil: offset = Int64(String(decoding: header.value, as: UTF8.self))
            default: break
            }
        }
        guard let cluster, let topic, let partition, let offset else { return nil }
        self.init(cluster: cluster, topic: topic, partition: partition, offset: offset)
    }

    /// Appends the four headers.
    public func append(to headers: inout [Header]) {
        headers.append(Header(Self.clusterHeader, cluster))
        headers.append(Header(Self.topicHeader, topic))
        headers.append(Header(Self.partitionHeader, String(partition)))
        headers.append(Header(Self.offsetHeader, String(offset)))
    }

    public var description: String { "\(cluster)/\(topic)[\(partition)]@\(offset)" }
}

/// Counters of messages a source's provenance rules skipped, and a once-per-reason log line.
final class ProvenanceMetrics: Sendable {
    let origin: Counter
    let maxHops: Counter
    let warned = Atomic<Bool>(false)

    init(source: String) {
        origin = Counter(
            label: MetricNames.sourceSkipped, dimensions: [("source", source), ("reason", Provenance.SkipReason.origin.rawValue)])
        maxHops = Counter(
            label: MetricNames.sourceSkipped, dimensions: [("source", source), ("reason", Provenance.SkipReason.maxHops.rawValue)])
    }

    func record(origin: Int, maxHops: Int, source: String, limit: Int, logger: Logger) {
        if origin > 0 { self.origin.increment(by: origin) }
        if maxHops > 0 {
            self.maxHops.increment(by: maxHops)
            // A message over the hop limit means a loop the origin rules did not stop: say it
            // once, the counter keeps the tally.
            if !warned.exchange(true, ordering: .relaxed) {
                logger.warning(
                    "messages over the hop limit are skipped (a bridge loop?); see switchyard_source_skipped_messages_total",
                    metadata: ["source": "\(source)", "maxHops": "\(limit)"])
            }
        }
    }
}
