import KafkaConnector
import SwitchyardCore
import Testing

/// A partition in memory: records at consecutive offsets from `start`, each naming its source
/// position (or none). Counts what the search reads.
final class PartitionInMemory: PartitionReader {
    let start: Int64
    let records: [SourcePosition?]
    private(set) var recordsRead = 0

    init(start: Int64 = 0, _ records: [SourcePosition?]) {
        self.start = start
        self.records = records
    }

    func bounds() throws -> (start: Int64, end: Int64) { (start, start + Int64(records.count)) }

    func read(from offset: Int64, limit: Int) throws -> [PositionedRecord] {
        let first = max(offset, start)
        let end = min(first + Int64(limit), start + Int64(records.count))
        guard first < end else { return [] }
        recordsRead += Int(end - first)
        return (first..<end).map { PositionedRecord(offset: $0, source: records[Int($0 - start)]) }
    }
}

func position(_ partition: Int32, _ offset: Int64, topic: String = "orders", cluster: String = "east") -> SourcePosition {
    SourcePosition(cluster: cluster, topic: topic, partition: partition, offset: offset)
}

/// A source partition with records at `offsets` (gaps allowed: compaction, transaction markers).
func sourcePartition(_ offsets: [Int64]) -> any PartitionReader {
    SparseSource(offsets: offsets)
}

struct SparseSource: PartitionReader {
    let offsets: [Int64]
    func bounds() throws -> (start: Int64, end: Int64) { (offsets.first ?? 0, (offsets.last ?? -1) + 1) }
    func read(from offset: Int64, limit: Int) throws -> [PositionedRecord] {
        offsets.filter { $0 >= offset }.prefix(limit).map { PositionedRecord(offset: $0, source: nil) }
    }
}

@Suite("Offset translation: the search over a target partition")
struct OffsetSearchTests {
    let east0 = SourcePartition(cluster: "east", topic: "orders", partition: 0)

    @Test func findsTheFirstRecordAtOrAfterTheCommittedOffsetWithFewReads() throws {
        // 100,000 records of source partition 0, copied from source offset 500 on (older ones
        // expired before the bridge started), starting at target offset 7.
        let target = PartitionInMemory(start: 7, (0..<100_000).map { position(0, 500 + Int64($0)) })
        for committed: Int64 in [500, 501, 12_345, 99_999 + 500] {
            var search = OffsetSearch(reader: target, window: 4)
            let boundary = try search.locate(east0, committed: committed, in: 7..<100_007)
            #expect(boundary.next?.offset == 7 + committed - 500)
            #expect(boundary.next?.source == position(0, committed))
            #expect(boundary.previous?.source?.offset == (committed == 500 ? nil : committed - 1))
            #expect(search.reads <= 20, "bisection, not a scan: \(search.reads) reads")
        }
        var search = OffsetSearch(reader: target, window: 4)
        let caughtUp = try search.locate(east0, committed: 100_500, in: 7..<100_007)
        #expect(caughtUp.next == nil && caughtUp.consumedEnd == 100_007 && caughtUp.previous?.source == position(0, 100_499))
        #expect(target.recordsRead < 5 * 20 * 4 + 80)
    }

    @Test func skipsRecordsOfOtherPartitionsAndRecordsWithoutPosition() throws {
        // Source partitions 0 and 1 interleaved (hash), with a record produced on the target directly.
        var records: [SourcePosition?] = []
        for index in 0..<1000 {
            records.append(position(0, Int64(index)))
            records.append(position(1, Int64(index)))
            if index == 600 { records.append(nil) }
        }
        let target = PartitionInMemory(records)
        var search = OffsetSearch(reader: target, window: 3)
        let boundary = try search.locate(east0, committed: 700, in: 0..<Int64(records.count))
        #expect(boundary.next?.source == position(0, 700))
        #expect(boundary.next?.offset == 1401)
        #expect(boundary.previous?.source == position(0, 699) && boundary.previous?.offset == 1399)
        #expect(search.reads < 40)
    }

    @Test func aPartitionAbsentFromTheTargetIsAtTheStart() throws {
        let target = PartitionInMemory((0..<50).map { position(1, Int64($0)) })
        var search = OffsetSearch(reader: target, window: 8)
        let boundary = try search.locate(east0, committed: 10, in: 0..<50)
        #expect(boundary.next == nil && boundary.previous == nil && boundary.consumedEnd == 0)
    }
}

@Suite("Offset translation: exactness and refusals")
struct OffsetTranslationTests {
    func request(_ layout: PartitionLayout, sources: Int32, targets: Int32, committed: [Int32: Int64]) -> TranslationRequest {
        TranslationRequest(
            cluster: "east", sourceTopic: "orders", targetTopic: "mirror.orders", sourcePartitions: sources, targetPartitions: targets,
            layout: layout, committed: committed)
    }

    @Test func keptPartitionsTranslateToTheNextRecordOrTheEnd() throws {
        let targets = [
            PartitionInMemory((0..<300).map { position(0, Int64($0)) }),
            PartitionInMemory((0..<200).map { position(1, Int64($0)) }),
        ]
        let results = try OffsetTranslation.translate(
            request(.keep, sources: 2, targets: 2, committed: [0: 120, 1: 200]),
            target: { targets[Int($0)] }, source: { partition in sourcePartition(Array(0..<(partition == 0 ? 300 : 200))) })
        #expect(results[0].offset == 120 && results[0].verdict == .exact && results[0].next == position(0, 120))
        #expect(results[1].offset == 200 && results[1].verdict == .atEnd)
    }

    @Test func aPartitionTheGroupNeverCommittedGetsNothing() throws {
        let target = PartitionInMemory((0..<10).map { position(0, Int64($0)) })
        let results = try OffsetTranslation.translate(
            request(.keep, sources: 1, targets: 1, committed: [:]),
            target: { _ in target }, source: { _ in sourcePartition(Array(0..<10)) })
        #expect(results[0].verdict == .noCommit && results[0].offset == nil)
    }

    @Test func hashedPartitionsAreExactWhenTheConsumedRecordsComeFirst() throws {
        // Two source partitions into one target partition: a first phase (consumed by the
        // group) interleaved, then a second phase interleaved.
        var records: [SourcePosition?] = []
        for index in 0..<50 { records += [position(0, Int64(index)), position(1, Int64(index))] }
        for index in 50..<80 { records += [position(1, Int64(index)), position(0, Int64(index))] }
        let target = PartitionInMemory(records)
        let results = try OffsetTranslation.translate(
            request(.hash, sources: 2, targets: 1, committed: [0: 50, 1: 50]),
            target: { _ in target }, source: { _ in sourcePartition(Array(0..<80)) })
        #expect(results[0].offset == 100 && results[0].verdict == .exact, "\(results[0].verdict)")
        #expect(results[0].next == position(1, 50))
    }

    @Test func hashedPartitionsAreRefusedWhenConsumedAndUnconsumedRecordsInterleave() throws {
        var records: [SourcePosition?] = []
        for index in 0..<50 { records += [position(0, Int64(index)), position(1, Int64(index))] }
        let target = PartitionInMemory(records)
        // The group read partition 0 through 39 and partition 1 through 9: partition 1's
        // record 10 (target offset 21) precedes partition 0's record 39 (target offset 78).
        let results = try OffsetTranslation.translate(
            request(.hash, sources: 2, targets: 1, committed: [0: 40, 1: 10]),
            target: { _ in target }, source: { _ in sourcePartition(Array(0..<50)) })
        #expect(results[0].offset == nil)
        guard case .refused(let reason) = results[0].verdict else {
            Issue.record("expected a refusal, got \(results[0].verdict)")
            return
        }
        #expect(reason.contains("source partition 0's record at source offset 39 (target offset 78)"), "\(reason)")
        #expect(reason.contains("source partition 1's record at source offset 10 (target offset 21)"), "\(reason)")
    }

    @Test func aBridgeBehindTheGroupIsRefused() throws {
        // The group read 0..<150 on the source; the bridge copied only 0..<100.
        let target = PartitionInMemory((0..<100).map { position(0, Int64($0)) })
        let results = try OffsetTranslation.translate(
            request(.keep, sources: 1, targets: 1, committed: [0: 150]),
            target: { _ in target }, source: { _ in sourcePartition(Array(0..<200)) })
        guard case .refused(let reason) = results[0].verdict else {
            Issue.record("expected a refusal, got \(results[0].verdict)")
            return
        }
        #expect(reason.contains("only through offset 99") && reason.contains("offset 100 is not on the target"), "\(reason)")
    }

    @Test func recordsMissingOnTheTargetAreRefused() throws {
        // Source offsets 60..<70 were not copied (a filter, or lost).
        let target = PartitionInMemory((Array(0..<60) + Array(70..<100)).map { position(0, Int64($0)) })
        let results = try OffsetTranslation.translate(
            request(.keep, sources: 1, targets: 1, committed: [0: 60]),
            target: { _ in target }, source: { _ in sourcePartition(Array(0..<100)) })
        guard case .refused(let reason) = results[0].verdict else {
            Issue.record("expected a refusal, got \(results[0].verdict)")
            return
        }
        #expect(reason.contains("would read offset 60 next") && reason.contains("source offset 70"), "\(reason)")
    }

    @Test func gapsInTheSourceOffsetsAreNotMissingRecords() throws {
        // A compacted source: offsets 0, 2, 5, 9; the group committed 3 (it read 0 and 2).
        let target = PartitionInMemory([0, 2, 5, 9].map { position(0, $0) })
        let results = try OffsetTranslation.translate(
            request(.keep, sources: 1, targets: 1, committed: [0: 3]),
            target: { _ in target }, source: { _ in sourcePartition([0, 2, 5, 9]) })
        #expect(results[0].offset == 2 && results[0].verdict == .exact && results[0].next == position(0, 5))
    }

    @Test func mirrorIntoFewerPartitionsSearchesTheHashedOnes() {
        #expect(PartitionLayout.mirror.sources(of: 0, sourceCount: 4, targetCount: 2) == [0, 2, 3])
        #expect(PartitionLayout.mirror.sources(of: 1, sourceCount: 4, targetCount: 4) == [1])
        #expect(PartitionLayout.keep.sources(of: 3, sourceCount: 2, targetCount: 4) == [])
        #expect(PartitionLayout.hash.sources(of: 1, sourceCount: 3, targetCount: 2) == [0, 1, 2])
    }
}
