import Foundation
import Testing

/// `switchyard reconcile` on a Kafka-to-Kafka bridge between kafka-mock processes: equality
/// for a complete copy; a record missing on the target, one altered there and one produced
/// there directly, each named.
@Suite("Reconciliation across a bridge", .serialized)
struct ReconcileTests {
    struct Partition {
        var equal: Bool
        var missing: [Int]
        var differing: [Int]
    }

    static func report(_ json: String) throws -> (equal: Bool, extra: Int, partitions: [Int: Partition]) {
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let topic = try #require((object["topics"] as? [[String: Any]])?.first)
        var partitions: [Int: Partition] = [:]
        for entry in try #require(topic["partitions"] as? [[String: Any]]) {
            partitions[try #require(entry["partition"] as? Int)] = Partition(
                equal: entry["equal"] as? Bool ?? false, missing: entry["missing"] as? [Int] ?? [],
                differing: entry["differing"] as? [Int] ?? [])
        }
        return (try #require(object["equal"] as? Bool), try #require(topic["extraCount"] as? Int), partitions)
    }

    @Test(.timeLimit(.minutes(4)))
    func reconcileFindsMissingAlteredAndExtraRecords() async throws {
        let east = try await Cluster.start(["orders": 2])
        let complete = try await Cluster.start(["mirror.orders": 2])
        let partial = try await Cluster.start(["mirror.orders": 2])
        defer { east.terminate(); complete.terminate(); partial.terminate() }
        try await east.produce("orders", keyed: keyedLines("r", 300), headers: [("copy", "yes")])
        try await east.produce("orders", keyed: ["k-drop|dropped", "k-alter|original"], headers: [("copy", "no")])
        let source = try await OffsetTranslationTests.all(east, "orders")
        #expect(source.count == 302)
        let dropped = try #require(source.first { $0.key == "k-drop" })
        let altered = try #require(source.first { $0.key == "k-alter" })
        let directory = try Bed.scratch("reconcile")

        // A complete copy: equal, exit 0.
        let whole = try OffsetTranslationTests.bridgeDocument(partition: "mirror", name: "whole", in: directory)
        let wholeEnv = fastGroup.merging([
            "SOURCE_BROKERS": east.brokers, "TARGET_BROKERS": complete.brokers, "TOPIC": "orders", "GROUP": Bed.unique("whole"),
            "METRICS_PORT": String(Bed.freePort()),
        ]) { $1 }
        let bridge = try Runtime(whole, environment: wholeEnv, name: "whole", directory: directory)
        await eventually("the complete copy has every record") {
            ((try? await OffsetTranslationTests.all(complete, "mirror.orders"))?.count ?? 0) >= 302
        }
        #expect(await bridge.stop() == 0, "\(bridge.logText)")
        let equal = try await OffsetTranslationTests.switchyard(["reconcile", "-c", whole, "--output", "json"], environment: wholeEnv)
        #expect(equal.status == 0, "\(equal.output) \(equal.errors)")
        let equalReport = try Self.report(equal.output)
        #expect(equalReport.equal && equalReport.extra == 0 && equalReport.partitions.values.allSatisfy(\.equal))

        // A copy without two records (filtered), one of them then produced on the target
        // with another value under its source position, and one record produced there directly.
        let filtered = try OffsetTranslationTests.bridgeDocument(partition: "mirror", filter: true, name: "filtered", in: directory)
        let partialEnv = fastGroup.merging([
            "SOURCE_BROKERS": east.brokers, "TARGET_BROKERS": partial.brokers, "TOPIC": "orders", "GROUP": Bed.unique("filtered"),
            "METRICS_PORT": String(Bed.freePort()),
        ]) { $1 }
        let filteringBridge = try Runtime(filtered, environment: partialEnv, name: "filtered", directory: directory)
        await eventually("the filtered copy has 300 records") {
            ((try? await OffsetTranslationTests.all(partial, "mirror.orders"))?.count ?? 0) >= 300
        }
        #expect(await filteringBridge.stop() == 0, "\(filteringBridge.logText)")
        try await partial.produce(
            "mirror.orders", keyed: ["k-alter|tampered"],
            headers: [
                ("switchyard-source-cluster", "east"), ("switchyard-source-topic", "orders"),
                ("switchyard-source-partition", String(altered.partition)), ("switchyard-source-offset", String(altered.offset)),
            ], partition: altered.partition)
        try await partial.produce("mirror.orders", keyed: ["k-direct|produced on the target"], partition: 0)

        let different = try await OffsetTranslationTests.switchyard(
            ["reconcile", "-c", filtered, "--output", "json"], environment: partialEnv)
        #expect(different.status == 1, "\(different.output) \(different.errors)")
        let report = try Self.report(different.output)
        #expect(!report.equal)
        #expect(report.extra == 1, "the record produced on the target directly")
        #expect(report.partitions[dropped.partition]?.missing == [Int(dropped.offset)], "\(report.partitions)")
        #expect(report.partitions[altered.partition]?.differing == [Int(altered.offset)], "\(report.partitions)")
        // The text report names them too.
        let text = try await OffsetTranslationTests.switchyard(["reconcile", "-c", filtered], environment: partialEnv)
        #expect(text.status == 1)
        #expect(
            text.output.contains("1 missing (source offsets \(dropped.offset))") && text.output.contains("1 differing (\(altered.offset))")
                && text.output.contains("extra: 1 target record"), "\(text.output)")

        // The dropped record produced on the target after all, with its key and value but
        // another value of the header `copy`: equal by key and value; differing with --header copy.
        try await partial.produce(
            "mirror.orders", keyed: ["k-drop|dropped"],
            headers: [
                ("copy", "changed"), ("switchyard-source-cluster", "east"), ("switchyard-source-topic", "orders"),
                ("switchyard-source-partition", String(dropped.partition)), ("switchyard-source-offset", String(dropped.offset)),
            ], partition: dropped.partition)
        let byValue = try Self.report(
            try await OffsetTranslationTests.switchyard(["reconcile", "-c", filtered, "--output", "json"], environment: partialEnv).output)
        #expect(byValue.partitions[dropped.partition]?.missing == [], "\(byValue.partitions)")
        #expect(byValue.partitions[dropped.partition]?.differing.contains(Int(dropped.offset)) == false, "\(byValue.partitions)")
        let byHeader = try Self.report(
            try await OffsetTranslationTests.switchyard(
                ["reconcile", "-c", filtered, "--output", "json", "--header", "copy"], environment: partialEnv
            ).output)
        #expect(byHeader.partitions[dropped.partition]?.differing.contains(Int(dropped.offset)) == true, "\(byHeader.partitions)")
        // The complete copy carries the header unchanged: still equal with it.
        let wholeByHeader = try await OffsetTranslationTests.switchyard(
            ["reconcile", "-c", whole, "--header", "copy"], environment: wholeEnv)
        #expect(wholeByHeader.status == 0, "\(wholeByHeader.output) \(wholeByHeader.errors)")
    }
}
