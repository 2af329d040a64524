import SwitchyardCore

/// Which source partitions a bridge may have written into each target partition, from the
/// Kafka target's `partition` choice and the two partition counts.
public enum PartitionLayout: String, Sendable {
    /// `partition: keep`: source partition N into target partition N.
    case keep
    /// `partition: mirror`: kept where the target has the partition, hashed otherwise.
    case mirror
    /// `partition: hash`: any source partition into any target partition.
    case hash

    /// The source partitions whose records target partition `target` may hold.
    public func sources(of target: Int32, sourceCount: Int32, targetCount: Int32) -> [Int32] {
        switch self {
        case .keep:
            return target < sourceCount ? [target] : []
        case .mirror:
            let own: [Int32] = target < sourceCount ? [target] : []
            return sourceCount > targetCount ? own + Array(targetCount..<sourceCount) : own
        case .hash:
            return Array(0..<sourceCount)
        }
    }
}

/// What to translate: one source topic, the target topic the bridge writes it to, and the
/// group's committed offsets on the source (the next offset to read, per partition).
public struct TranslationRequest: Sendable {
    public var cluster: String
    public var sourceTopic: String
    public var targetTopic: String
    public var sourcePartitions: Int32
    public var targetPartitions: Int32
    public var layout: PartitionLayout
    /// Source partition to committed offset; a partition the group never committed is absent.
    public var committed: [Int32: Int64]

    public init(
        cluster: String, sourceTopic: String, targetTopic: String, sourcePartitions: Int32, targetPartitions: Int32,
        layout: PartitionLayout, committed: [Int32: Int64]
    ) {
        self.cluster = cluster
        self.sourceTopic = sourceTopic
        self.targetTopic = targetTopic
        self.sourcePartitions = sourcePartitions
        self.targetPartitions = targetPartitions
        self.layout = layout
        self.committed = committed
    }
}

/// The translation of one target partition.
public struct PartitionTranslation: Sendable, Equatable {
    public enum Verdict: Sendable, Equatable {
        /// The record at `offset` is the next record the group would have read on the source
        /// (checked against the source).
        case exact
        /// The group had read everything of these source partitions the target holds:
        /// `offset` is the target's end.
        case atEnd
        /// The group committed nothing for these source partitions: nothing to commit.
        case noCommit
        /// No exact offset exists or it cannot be proven; the reason names the records.
        case refused(String)
    }

    public var topic: String
    public var partition: Int32
    /// The source partitions the target partition may hold, with the group's committed offsets.
    public var sources: [(partition: Int32, committed: Int64?)]
    /// The target partition's log start and end when it was searched.
    public var start: Int64
    public var end: Int64
    /// The translated offset (the next offset for the group to read), when there is one.
    public var offset: Int64?
    /// The source position of the record at `offset` (nil at the end).
    public var next: SourcePosition?
    public var verdict: Verdict
    /// The group's committed offset on the target before (filled by the caller; nil: none).
    public var previouslyCommitted: Int64?
    /// Reads the search issued and records it read.
    public var reads: Int
    public var recordsRead: Int

    public var isRefused: Bool {
        if case .refused = verdict { return true }
        return false
    }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.topic == rhs.topic && lhs.partition == rhs.partition && lhs.offset == rhs.offset && lhs.verdict == rhs.verdict
            && lhs.next == rhs.next
            && lhs.sources.map(\.partition) == rhs.sources.map(\.partition) && lhs.sources.map(\.committed) == rhs.sources.map(\.committed)
    }
}

/// Exact consumer-group offset translation from a source topic to the target topic a bridge
/// copied it into, by the source positions the bridge stamped on every record.
///
/// For each target partition and each source partition it may hold, ``OffsetSearch`` finds
/// the first record at or after the group's committed source offset. The translated offset is
/// the first of those (or the end). It is exact only when every record the group consumed
/// precedes it and every record it did not consume follows it; with several source partitions
/// in one target partition that depends on how the bridge interleaved them, and a target
/// partition where it does not hold is refused, naming the two records. Each source partition
/// is then checked against the source: the record found next must be the source's next record
/// after the committed offset (nothing missing in between), and every record the group
/// consumed must have been copied (the bridge is not behind the group).
public enum OffsetTranslation {
    public static func translate(
        _ request: TranslationRequest,
        target targetReader: (Int32) throws -> any PartitionReader,
        source sourceReader: (Int32) throws -> any PartitionReader,
        window: Int = 16
    ) throws -> [PartitionTranslation] {
        var results: [PartitionTranslation] = []
        // Per source partition, over every target partition: the last consumed and first
        // unconsumed records found, and the target partitions that may hold it.
        var lastConsumed: [Int32: Int64] = [:]
        var firstUnconsumed: [Int32: (source: Int64, target: Int32, offset: Int64)] = [:]
        var holders: [Int32: [Int]] = [:]
        for partition in 0..<request.targetPartitions {
            let sources = request.layout.sources(
                of: partition, sourceCount: request.sourcePartitions, targetCount: request.targetPartitions)
            let reader = try targetReader(partition)
            let (start, end) = try reader.bounds()
            var result = PartitionTranslation(
                topic: request.targetTopic, partition: partition,
                sources: sources.map { ($0, request.committed[$0]) }, start: start, end: end,
                offset: nil, next: nil, verdict: .noCommit, previouslyCommitted: nil, reads: 0, recordsRead: 0)
            defer { results.append(result) }
            let committedSources = sources.filter { request.committed[$0] != nil }
            if committedSources.isEmpty { continue }
            if committedSources.count != sources.count {
                let missing = sources.filter { request.committed[$0] == nil }.map(String.init).joined(separator: ", ")
                result.verdict = .refused(
                    "it may hold records of source partitions \(missing), for which the group has no committed offset, and of partitions it has one for: a consumer of this target partition cannot resume both"
                )
                continue
            }
            var search = OffsetSearch(reader: reader, window: window)
            var boundaries: [(source: Int32, boundary: BoundaryInTarget)] = []
            for source in sources {
                let key = SourcePartition(cluster: request.cluster, topic: request.sourceTopic, partition: source)
                let boundary = try search.locate(key, committed: request.committed[source]!, in: start..<end)
                boundaries.append((source, boundary))
                holders[source, default: []].append(results.count)
                if let previous = boundary.previous?.source?.offset {
                    lastConsumed[source] = max(lastConsumed[source] ?? previous, previous)
                }
                if let next = boundary.next, let offset = next.source?.offset, offset < (firstUnconsumed[source]?.source ?? .max) {
                    firstUnconsumed[source] = (offset, partition, next.offset)
                }
            }
            result.reads = search.reads
            result.recordsRead = search.recordsRead
            let first = boundaries.min { ($0.boundary.next?.offset ?? end) < ($1.boundary.next?.offset ?? end) }!
            let translated = first.boundary.next?.offset ?? end
            if let late = boundaries.first(where: { $0.boundary.consumedEnd > translated }), let consumed = late.boundary.previous {
                let unconsumed = first.boundary.next!
                result.verdict = .refused(
                    "no single offset is exact: source partition \(late.source)'s record at source offset \(consumed.source!.offset) (target offset \(consumed.offset)) was consumed by the group, "
                        + "but source partition \(first.source)'s record at source offset \(unconsumed.source!.offset) (target offset \(unconsumed.offset)), which it did not consume, comes first"
                )
                continue
            }
            result.offset = translated
            result.next = first.boundary.next?.source
            result.verdict = translated == end ? .atEnd : .exact
        }
        // Against the source: nothing the group consumed is missing on the target, and the
        // next record found is the source's next record after the committed offset.
        for (source, indices) in holders.sorted(by: { $0.key < $1.key }) {
            guard let committed = request.committed[source] else { continue }
            let reader = try sourceReader(source)
            let (start, end) = try reader.bounds()
            let key = "source partition \(request.cluster)/\(request.sourceTopic)[\(source)]"
            var problem: String?
            let resume = lastConsumed[source].map { $0 + 1 } ?? start
            if resume < min(committed, end), let missing = try reader.read(from: resume, limit: 1).first, missing.offset < committed {
                problem =
                    "\(key): the group consumed up to offset \(committed - 1), but the target holds its records only through "
                    + (lastConsumed[source].map { "offset \($0)" } ?? "none of them")
                    + " (offset \(missing.offset) is not on the target): the bridge is behind the group, or the target topic lost records; translate again when the bridge caught up"
            } else if let found = firstUnconsumed[source] {
                var expected: Int64?
                if committed < end { expected = try reader.read(from: committed, limit: 1).first?.offset }
                if expected != found.source {
                    problem =
                        "\(key): the group would read offset \(expected.map(String.init) ?? "none (the end)") next, but the first record of it on the target at or after offset \(committed) is source offset \(found.source) (target partition \(found.target), offset \(found.offset)): the records between are not on the target (filtered, skipped or lost)"
                }
            }
            if let problem {
                for index in indices where !results[index].isRefused {
                    results[index].verdict = .refused(problem)
                    results[index].offset = nil
                }
            }
        }
        return results
    }
}
