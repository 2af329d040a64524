import KafkaConnector
import Testing

/// A partition in memory for reconciliation: records at consecutive offsets from `start`,
/// each with key, value and origin.
struct ScannedPartition: PartitionScanner {
    var start: Int64 = 0
    var records: [(key: String?, value: String, origin: RecordOrigin)]

    func bounds() throws -> (start: Int64, end: Int64) { (start, start + Int64(records.count)) }

    func scan(from: Int64, to: Int64, _ body: (Int64, UInt64, RecordOrigin) -> Void) throws {
        for offset in max(from, start)..<min(to, start + Int64(records.count)) {
            let record = records[Int(offset - start)]
            body(offset, RecordDigest.hash(key: record.key.map { Array($0.utf8) }, value: Array(record.value.utf8)), record.origin)
        }
    }
}

@Suite("Reconciliation of a source topic and its bridged copy")
struct ReconciliationTests {
    /// Source partition `partition` with `count` records.
    func source(_ partition: Int, _ count: Int) -> ScannedPartition {
        ScannedPartition(records: (0..<count).map { (key: "k\(partition)-\($0)", value: "v\(partition)-\($0)", origin: .none) })
    }

    /// The copy of `source` records in target order (source partition, offset), with changes.
    func copy(_ positions: [(Int32, Int64)], value: (Int32, Int64) -> String? = { "v\($0)-\($1)" }) -> ScannedPartition {
        ScannedPartition(
            records: positions.compactMap { partition, offset in
                value(partition, offset).map {
                    (key: "k\(partition)-\(offset)", value: $0, origin: .position(partition: partition, offset: offset))
                }
            })
    }

    func reconcile(_ sources: [ScannedPartition], _ targets: [ScannedPartition]) throws -> TopicReconciliation {
        try Reconciliation.reconcile(
            cluster: "east", sourceTopic: "orders", targetTopic: "mirror.orders",
            sourcePartitions: Int32(sources.count), targetPartitions: Int32(targets.count),
            source: { sources[Int($0)] }, target: { targets[Int($0)] })
    }

    @Test func aCompleteCopyInAnotherOrderIsEqual() throws {
        // Two source partitions hashed into one target partition, interleaved.
        var positions: [(Int32, Int64)] = []
        for offset in 0..<100 { positions += [(1, Int64(offset)), (0, Int64(offset))] }
        let result = try reconcile([source(0, 100), source(1, 100)], [copy(positions)])
        #expect(result.isEqual)
        #expect(result.partitions.map(\.target.count) == [100, 100])
        #expect(result.partitions[0].source == result.partitions[0].target)
    }

    @Test func namesMissingDifferingDuplicatedAndExtraRecords() throws {
        var positions = (0..<50).map { (Int32(0), Int64($0)) }
        positions.removeAll { $0.1 == 17 }  // removed from the target
        positions.append((0, 30))  // copied twice
        var target = copy(positions) { $1 == 40 ? "altered" : "v\($0)-\($1)" }
        target.records.append((key: "direct", value: "produced on the target", origin: .none))
        target.records.append((key: "eu", value: "another cluster's", origin: .other))
        let result = try reconcile([source(0, 50)], [target])
        #expect(!result.isEqual)
        let partition = result.partitions[0]
        #expect(partition.missing == [17] && partition.missingCount == 1)
        #expect(partition.differing == [40] && partition.differingCount == 1)
        #expect(partition.duplicated == [30] && partition.duplicatedCount == 1)
        #expect(result.extraCount == 1 && result.extra.first?.offset == 50)
        #expect(result.otherSources == 1)
    }

    /// A partition whose target records exceed what naming may hold at once is named in
    /// passes over residue classes of the offsets, with the same result.
    @Test func namingInBoundedPassesFindsTheSameDifferences() throws {
        var positions = (0..<200).map { (Int32(0), Int64($0)) }
        positions.removeAll { [17, 18, 91, 150].contains($0.1) }
        positions += [(0, 30), (0, 31), (0, 199), (0, 250), (0, 251)]  // duplicated, and offsets the source lacks
        let target = copy(positions) { [40, 77, 120, 121].contains($1) ? "altered" : "v\($0)-\($1)" }
        let sources = [source(0, 200)]
        var results: [PartitionReconciliation] = []
        for maxEntries in [Reconciliation.defaultMaxEntries, 7, 1] {
            let result = try Reconciliation.reconcile(
                cluster: "east", sourceTopic: "orders", targetTopic: "mirror.orders", sourcePartitions: 1, targetPartitions: 1,
                source: { sources[Int($0)] }, target: { _ in target }, show: 3, maxEntries: maxEntries)
            results.append(result.partitions[0])
        }
        for partition in results {
            #expect(partition.missingCount == 4 && partition.missing == [17, 18, 91])
            #expect(partition.differingCount == 4 && partition.differing == [40, 77, 120])
            #expect(partition.duplicatedCount == 3 && partition.duplicated == [30, 31, 199])
            // 250 and 251 are past the range: counted as later, not named.
            #expect(partition.unknownCount == 0)
        }
    }

    @Test func recordsCopiedAfterTheRangeAreNotDifferences() throws {
        let target = copy((0..<60).map { (Int32(0), Int64($0)) })
        // The source held 50 when reconciliation started; the copy already has 10 more.
        let result = try reconcile([source(0, 50)], [target])
        #expect(result.isEqual && result.later == 10)
    }

    @Test func theDigestIgnoresOrderButNotContent() {
        var one = RecordDigest()
        var two = RecordDigest()
        for index in 0..<1000 { one.add(RecordDigest.hash(key: Array("k\(index)".utf8), value: Array("v".utf8))) }
        for index in (0..<1000).reversed() { two.add(RecordDigest.hash(key: Array("k\(index)".utf8), value: Array("v".utf8))) }
        #expect(one == two)
        #expect(RecordDigest.hash(key: nil, value: [1]) != RecordDigest.hash(key: [], value: [1]), "an absent key is not an empty key")
        #expect(
            RecordDigest.hash(key: [1], value: [2]) != RecordDigest.hash(key: [], value: [1, 2]), "the key's length is part of the hash")
    }

    @Test func chosenHeadersArePartOfTheHash() {
        let plain = RecordDigest.hash(key: [1], value: [2])
        #expect(RecordDigest.hash(key: [1], value: [2], headers: []) == plain, "no header chosen: key and value alone")
        let withHeader = RecordDigest.hash(key: [1], value: [2], headers: [[7]])
        #expect(withHeader != plain)
        #expect(withHeader == RecordDigest.hash(key: [1], value: [2], headers: [[7]]))
        #expect(withHeader != RecordDigest.hash(key: [1], value: [2], headers: [[8]]), "another header value")
        #expect(
            RecordDigest.hash(key: [1], value: [2], headers: [nil]) != RecordDigest.hash(key: [1], value: [2], headers: [[]]),
            "an absent header is not an empty one")
        #expect(
            RecordDigest.hash(key: [1], value: [2, 7], headers: [[]]) != RecordDigest.hash(key: [1], value: [2], headers: [[7]]),
            "the value's length separates it from the headers")
        #expect(
            RecordDigest.hash(key: [1], value: [2], headers: [[7], nil]) != RecordDigest.hash(key: [1], value: [2], headers: [nil, [7]]),
            "headers in the order chosen")
    }
}
