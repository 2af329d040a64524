import Foundation
import Testing
#if canImport(Glibc)
    import Glibc
#endif

/// `switchyard cutover` between two kafka-mock processes: refused while the bridge or a
/// listed group still runs on the source; then it copies what the running bridge had not,
/// moves the group, reconciles, and the group continues on the target from exactly the next
/// record.
@Suite("Cutover of a Kafka-to-Kafka bridge", .serialized)
struct CutoverTests {
    typealias T = OffsetTranslationTests

    @Test(.timeLimit(.minutes(5)))
    func aCutoverCopiesToTheEndMovesTheGroupAndProvesTheCopy() async throws {
        let east = try await Cluster.start(["orders": 4])
        let west = try await Cluster.start(["mirror.orders": 4])
        defer { east.terminate(); west.terminate() }
        try await east.produce("orders", keyed: keyedLines("c", 3000))
        // The application's group reads 1,000 records on the source and leaves.
        let group = Bed.unique("billing")
        let consumed = try await T.consume(east, "orders", group: group, count: 1000)
        #expect(consumed.count == 1000)

        let directory = try Bed.scratch("cutover")
        let document = try T.bridgeDocument(partition: "keep", in: directory)
        let environment = fastGroup.merging([
            "SOURCE_BROKERS": east.brokers, "TARGET_BROKERS": west.brokers, "TOPIC": "orders", "GROUP": Bed.unique("bridge"),
            "METRICS_PORT": String(Bed.freePort()),
        ]) { $1 }
        let bridge = try Runtime(document, environment: environment, name: "bridge", directory: directory)
        await eventually("the bridge copied every record") { ((try? await T.all(west, "mirror.orders"))?.count ?? 0) >= 3000 }

        // A group that never committed on the source: refused before anything runs.
        let unknown = try await T.switchyard(
            ["cutover", "-c", document, "--group", "nobody-\(UInt32.random(in: 0...UInt32.max))"], environment: environment)
        #expect(
            unknown.status == 1 && unknown.errors.contains("has no committed offsets") && unknown.errors.contains("Nothing was done"),
            "\(unknown.errors)")
        // While the bridge runs, the cutover does not complete and moves no group. The mock
        // cluster does not list groups, so the preflight cannot see the bridge's member (a
        // real cluster refuses there: "a bridge is still running"); the bounded copy then finds
        // that it does not own every partition and fails.
        let running = try await T.switchyard(["cutover", "-c", document, "--group", group], environment: environment)
        #expect(running.status == 1, "\(running.output)\n\(running.errors)")
        #expect(
            running.errors.contains("a bridge is still running") || running.output.contains("CutoverFailed at copy"),
            "\(running.output)\n\(running.errors)")
        #expect(!running.output.contains("committed on"), "no group was moved: \(running.output)")
        #expect(await bridge.stop() == 0, "\(bridge.logText)")

        // 500 more records reach the source after the bridge stopped: the cutover copies them.
        try await east.produce("orders", keyed: keyedLines("c", 500, from: 3000))
        let report = directory.appendingPathComponent("report.json").path
        let done = try await T.switchyard(["cutover", "-c", document, "--group", group, "--report", report], environment: environment)
        #expect(done.status == 0, "\(done.output)\n\(done.errors)")
        #expect(done.output.contains("CutoverComplete: 3500 records copied, 1 group moved"), "\(done.output)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: report))) as? [String: Any])
        #expect(object["condition"] as? String == "CutoverComplete")
        #expect(object["copiedRecords"] as? Int == 3500)
        let reconciliation = try #require(object["reconciliation"] as? [String: Any])
        #expect(reconciliation["equal"] as? Bool == true)

        let source = try await T.all(east, "orders")
        #expect(source.count == 3500)
        let target = try await T.all(west, "mirror.orders")
        #expect(target.count == 3500, "every record once on the target: \(target.count)")
        let continued = try await T.consume(west, "mirror.orders", group: group)
        T.expectExactContinuation(source: source, consumed: consumed, continued: continued)
    }

    @Test(.timeLimit(.minutes(3)))
    func aBoundedRunStopsAtTheEndItSawAndExitsZero() async throws {
        let east = try await Cluster.start(["orders": 4])
        let west = try await Cluster.start(["mirror.orders": 4])
        defer { east.terminate(); west.terminate() }
        try await east.produce("orders", keyed: keyedLines("s", 2000))
        let directory = try Bed.scratch("stop-at-end")
        let document = try T.bridgeDocument(partition: "keep", in: directory)
        let environment = fastGroup.merging([
            "SOURCE_BROKERS": east.brokers, "TARGET_BROKERS": west.brokers, "TOPIC": "orders", "GROUP": Bed.unique("bridge"),
            "METRICS_PORT": String(Bed.freePort()),
        ]) { $1 }
        let run = try await T.switchyard(["run", "-c", document, "--stop-at", "end"], environment: environment)
        #expect(run.status == 0, "\(run.errors)")
        #expect(run.errors.contains("reached the end of its input"), "\(run.errors)")
        let target = try await T.all(west, "mirror.orders")
        #expect(target.count == 2000)
        #expect(Set(target.map(\.key)) == Set(keyedLines("s", 2000).map { String($0.split(separator: "|")[0]) }))
        // Nothing new: a second bounded run copies nothing and exits 0 at once.
        let again = try await T.switchyard(["run", "-c", document, "--stop-at", "end"], environment: environment)
        #expect(again.status == 0, "\(again.errors)")
        #expect(try await T.all(west, "mirror.orders").count == 2000)
        // A source that cannot stop at its end is refused before anything runs.
        let generator = directory.appendingPathComponent("generator.yaml").path
        try """
        sources: [{name: gen, generate: {count: 10}}]
        targets: [{name: out, drop: {}}]
        routes: [{from: [gen], to: [out]}]
        observability: {listen: ""}
        """.write(toFile: generator, atomically: true, encoding: .utf8)
        let refused = try await T.switchyard(["run", "-c", generator, "--stop-at", "end"], environment: [:])
        #expect(refused.status == 2 && refused.errors.contains("spec.sources[0] (generate)"), "\(refused.errors)")
    }
}
