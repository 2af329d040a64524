import SwitchyardCore

/// One record of a partition as offset translation sees it: its offset there and the source
/// position its headers name (nil when it carries none: not written by a bridge).
public struct PositionedRecord: Sendable, Equatable {
    public var offset: Int64
    public var source: SourcePosition?

    public init(offset: Int64, source: SourcePosition?) {
        self.offset = offset
        self.source = source
    }
}

/// Reads one partition by offset: what offset translation needs of a cluster. Blocking; the
/// Kafka implementation runs on a thread of its own, never on the cooperative pool.
public protocol PartitionReader {
    /// The first offset still held (log start) and the end (high watermark: the next offset
    /// to be written).
    func bounds() throws -> (start: Int64, end: Int64)
    /// Records from `offset` on, in offset order: at most `limit`, at least one when a record
    /// at or after `offset` exists below the end.
    func read(from offset: Int64, limit: Int) throws -> [PositionedRecord]
}

/// A source partition, named as the position headers name it.
public struct SourcePartition: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var cluster: String
    public var topic: String
    public var partition: Int32

    public init(cluster: String, topic: String, partition: Int32) {
        self.cluster = cluster
        self.topic = topic
        self.partition = partition
    }

    public init(_ position: SourcePosition) {
        self.init(cluster: position.cluster, topic: position.topic, partition: position.partition)
    }

    public var description: String { "\(cluster)/\(topic)[\(partition)]" }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.cluster, lhs.topic, lhs.partition) < (rhs.cluster, rhs.topic, rhs.partition)
    }
}

/// Where one source partition's records sit in one target partition, relative to a
/// committed source offset: the result of ``OffsetSearch/locate(_:committed:in:)``.
public struct BoundaryInTarget: Sendable, Equatable {
    /// The smallest target offset from which no record of the partition below the committed
    /// offset follows (every record of it before this offset was consumed).
    public var consumedEnd: Int64
    /// The first record of the partition at or after the committed offset (nil: none yet).
    public var next: PositionedRecord?
    /// The last record of the partition below the committed offset (nil: none in this target
    /// partition).
    public var previous: PositionedRecord?
}

/// Binary search over a target partition for the records of source partitions, by the source
/// offsets in their position headers.
///
/// The records of one source partition appear in a target partition in source-offset order
/// (a bridge keeps per-partition order), possibly interleaved with records of other source
/// partitions. For a source partition `p`, let `f(t)` be the source offset of the first record
/// of `p` at or after target offset `t` (infinite when none): `f` never decreases, so the
/// smallest `t` with `f(t) >= committed` is found by bisection. Each probe reads a short window
/// (`window` records) and, when the window holds no record of `p`, reads on only up to the
/// current upper bound, so a partition that is dense in the target costs a few short reads
/// per halving; one that is absent costs one read of the remaining range.
public struct OffsetSearch {
    public let reader: any PartitionReader
    public let window: Int
    /// Records read, over every probe (for reports and tests).
    public private(set) var recordsRead = 0
    /// Reads issued.
    public private(set) var reads = 0

    public init(reader: any PartitionReader, window: Int = 16) {
        self.reader = reader
        self.window = max(1, window)
    }

    /// Locates the boundary of `partition` at `committed` (the next source offset the group
    /// would read) within `[start, end)` of the target partition.
    public mutating func locate(_ partition: SourcePartition, committed: Int64, in range: Range<Int64>) throws -> BoundaryInTarget {
        var low = range.lowerBound
        var high = range.upperBound
        var next: PositionedRecord?
        var previous: PositionedRecord?
        while low < high {
            let middle = low + (high - low) / 2
            guard let found = try first(of: partition, from: middle, before: high) else {
                // No record of the partition in [middle, high): f(middle) == f(high).
                high = middle
                continue
            }
            if found.source!.offset >= committed {
                high = middle
                next = found
            } else {
                low = found.offset + 1
                previous = found
            }
        }
        return BoundaryInTarget(consumedEnd: low, next: next, previous: previous)
    }

    /// The first record of `partition` in `[offset, limit)`, reading windows in turn.
    mutating func first(of partition: SourcePartition, from offset: Int64, before limit: Int64) throws -> PositionedRecord? {
        var position = offset
        while position < limit {
            let count = Int(min(Int64(window), limit - position))
            let records = try reader.read(from: position, limit: count)
            reads += 1
            recordsRead += records.count
            guard let last = records.last else { return nil }
            for record in records where record.offset >= position && record.offset < limit {
                if let source = record.source, SourcePartition(source) == partition { return record }
            }
            position = max(position + 1, last.offset + 1)
        }
        return nil
    }
}
