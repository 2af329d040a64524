import SwitchyardCore

/// Where a target record says it came from, relative to the source topic being reconciled.
public enum RecordOrigin: Sendable, Equatable {
    /// No source position headers: produced on the target directly (or by a bridge with
    /// `positionHeaders: false`).
    case none
    /// A position in another cluster or topic (an aggregate of several sources).
    case other
    case position(partition: Int32, offset: Int64)
}

/// Reads a partition in order for reconciliation; blocking.
public protocol PartitionScanner {
    /// The log start and end (high watermark).
    func bounds() throws -> (start: Int64, end: Int64)
    /// Calls `body` with each record in `[from, to)`: its offset, ``RecordDigest`` hash and origin.
    func scan(from: Int64, to: Int64, _ body: (Int64, UInt64, RecordOrigin) -> Void) throws
}

/// The comparison of one source partition with the records on the target that name it.
public struct PartitionReconciliation: Sendable {
    public var partition: Int32
    /// The source range compared: what the partition held when reconciliation started.
    public var start: Int64
    public var end: Int64
    public var source = RecordDigest()
    /// Target records naming an offset in the range.
    public var target = RecordDigest()
    /// Source offsets with no record on the target (the first few), and how many.
    public var missing: [Int64] = []
    public var missingCount = 0
    /// Source offsets whose target record has another key or value.
    public var differing: [Int64] = []
    public var differingCount = 0
    /// Source offsets named by more than one target record.
    public var duplicated: [Int64] = []
    public var duplicatedCount = 0
    /// Target records naming an offset of the range that the source does not hold.
    public var unknown: [Int64] = []
    public var unknownCount = 0

    public var isEqual: Bool { source == target && missingCount == 0 && differingCount == 0 && duplicatedCount == 0 && unknownCount == 0 }
}

/// The comparison of one source topic with the target topic a bridge copies it into.
public struct TopicReconciliation: Sendable {
    public var sourceTopic: String
    public var targetTopic: String
    public var partitions: [PartitionReconciliation]
    /// Target records without a source position (the first few, as partition and offset).
    public var extra: [(partition: Int32, offset: Int64)]
    public var extraCount: Int
    /// Where the extra records are, in the target's own terms, when partition and offset do not
    /// name them (an object key and line number); empty otherwise.
    public var extraPlaces: [String] = []
    /// Target records from other clusters or topics (not a difference: an aggregate's).
    public var otherSources: Int
    /// Target records naming source offsets past the compared range (copied after it started).
    public var later: Int
    /// Records read on each side.
    public var sourceRecords: Int
    public var targetRecords: Int

    public var isEqual: Bool { extraCount == 0 && partitions.allSatisfy(\.isEqual) }
}

/// Compares a source topic with its bridged copy, by the source positions on the copies.
///
/// First pass: per source partition, the count and order-independent digest of key and value
/// of the records present when it starts, and the same over the target records that name
/// them (memory: a digest per partition). Only a partition whose digests differ is read again
/// to name the differences: its target records' hashes by source offset (memory: that
/// partition's records on the target), then the source partition in order.
public enum Reconciliation {
    public static func reconcile(
        cluster: String, sourceTopic: String, targetTopic: String,
        sourcePartitions: Int32, targetPartitions: Int32,
        source sourceScanner: (Int32) throws -> any PartitionScanner,
        target targetScanner: (Int32) throws -> any PartitionScanner,
        show: Int = 5,
        maxEntries: Int = defaultMaxEntries
    ) throws -> TopicReconciliation {
        var result = TopicReconciliation(
            sourceTopic: sourceTopic, targetTopic: targetTopic, partitions: [], extra: [], extraCount: 0, otherSources: 0, later: 0,
            sourceRecords: 0, targetRecords: 0)
        // The ranges first, on both sides, so that both describe the same moment as closely as
        // the clusters allow.
        let sources = try (0..<sourcePartitions).map { try sourceScanner($0) }
        let targets = try (0..<targetPartitions).map { try targetScanner($0) }
        let sourceRanges = try sources.map { try $0.bounds() }
        let targetRanges = try targets.map { try $0.bounds() }
        result.partitions = sourceRanges.enumerated().map {
            PartitionReconciliation(partition: Int32($0.offset), start: $0.element.start, end: $0.element.end)
        }
        for (index, scanner) in sources.enumerated() {
            try scanner.scan(from: sourceRanges[index].start, to: sourceRanges[index].end) { _, hash, _ in
                result.partitions[index].source.add(hash)
            }
            result.sourceRecords += result.partitions[index].source.count
        }
        for (index, scanner) in targets.enumerated() {
            try scanner.scan(from: targetRanges[index].start, to: targetRanges[index].end) { offset, hash, origin in
                result.targetRecords += 1
                switch origin {
                case .none:
                    result.extraCount += 1
                    if result.extra.count < show { result.extra.append((Int32(index), offset)) }
                case .other:
                    result.otherSources += 1
                case .position(let partition, let sourceOffset):
                    guard partition >= 0, partition < sourcePartitions else {
                        result.extraCount += 1
                        if result.extra.count < show { result.extra.append((Int32(index), offset)) }
                        return
                    }
                    let range = sourceRanges[Int(partition)]
                    if sourceOffset >= range.end {
                        result.later += 1
                    } else if sourceOffset >= range.start {
                        result.partitions[Int(partition)].target.add(hash)
                    }
                }
            }
        }
        for index in result.partitions.indices where result.partitions[index].source != result.partitions[index].target {
            try name(
                &result.partitions[index], source: sources[index], targets: targets, targetRanges: targetRanges, show: show,
                maxEntries: maxEntries)
        }
        return result
    }

    /// How many target records naming the differences of one partition may hold in memory
    /// at once (a dictionary entry each, about 50 bytes): beyond it the partition is named in
    /// several passes, each over the offsets of one residue class.
    public static let defaultMaxEntries = 2_000_000

    /// Names the differences of one partition. The target records naming it are read into a
    /// dictionary by source offset, then the source partition is read in order against it;
    /// when the partition's target records exceed `maxEntries`, this is done in
    /// `ceil(count / maxEntries)` passes, pass `p` taking the offsets with `offset % passes == p`,
    /// so that memory stays bounded whatever the partition's size (each pass reads both sides
    /// again).
    static func name(
        _ partition: inout PartitionReconciliation, source: any PartitionScanner, targets: [any PartitionScanner],
        targetRanges: [(start: Int64, end: Int64)], show: Int, maxEntries: Int = defaultMaxEntries
    ) throws {
        let range = partition.start..<partition.end
        let number = partition.partition
        let passes = Int64(max(1, (partition.target.count + max(1, maxEntries) - 1) / max(1, maxEntries)))
        /// The first `show` of `earlier` and `more`, in offset order.
        func first(_ earlier: [Int64], _ more: [Int64]) -> [Int64] { Array((earlier + more).sorted().prefix(show)) }
        for pass in 0..<passes {
            var copies: [Int64: (hash: UInt64, count: Int)] = [:]
            for (index, scanner) in targets.enumerated() {
                try scanner.scan(from: targetRanges[index].start, to: targetRanges[index].end) { _, hash, origin in
                    guard case .position(let sourcePartition, let offset) = origin, sourcePartition == number, range.contains(offset),
                        offset % passes == pass
                    else { return }
                    if let existing = copies[offset] {
                        copies[offset] = (existing.hash == hash ? existing.hash : existing.hash ^ hash ^ 1, existing.count + 1)
                    } else {
                        copies[offset] = (hash, 1)
                    }
                }
            }
            var missing: [Int64] = []
            var differing: [Int64] = []
            var duplicated: [Int64] = []
            try source.scan(from: range.lowerBound, to: range.upperBound) { offset, hash, _ in
                guard offset % passes == pass else { return }
                guard let copy = copies.removeValue(forKey: offset) else {
                    partition.missingCount += 1
                    if missing.count < show { missing.append(offset) }
                    return
                }
                if copy.count > 1 {
                    partition.duplicatedCount += 1
                    if duplicated.count < show { duplicated.append(offset) }
                }
                if copy.hash != hash {
                    partition.differingCount += 1
                    if differing.count < show { differing.append(offset) }
                }
            }
            partition.missing = first(partition.missing, missing)
            partition.differing = first(partition.differing, differing)
            partition.duplicated = first(partition.duplicated, duplicated)
            partition.unknownCount += copies.count
            partition.unknown = first(partition.unknown, Array(copies.keys.sorted().prefix(show)))
        }
    }
}
