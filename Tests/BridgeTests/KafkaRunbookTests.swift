import Foundation
import Testing
import TestBedSupport

/// Runs the commands of docs/migration.md, "Runbook: Kafka to Kafka", as written: the `sh`
/// blocks of that section in order, with bash, against two kafka-mock clusters; then checks
/// that billing read every record once across the two clusters and that the report proves the
/// copy.
@Suite("Kafka-to-Kafka runbook", .serialized)
struct KafkaRunbookTests {
    @Test(.timeLimit(.minutes(4)))
    func theDocumentedKafkaMigrationWorks() async throws {
        let blocks = try MigrationWalkthroughTests.commands(in: "docs/migration.md", section: "Runbook: Kafka to Kafka")
        #expect(blocks.count >= 6, "docs/migration.md lost its runbook commands (found \(blocks.count) blocks)")
        let east = try await Cluster.start(["orders": 4])
        let west = try await Cluster.start(["mirror.orders": 4])
        defer { east.terminate(); west.terminate() }
        let work = try Bed.scratch("kafka-runbook")
        let script = work.appendingPathComponent("runbook.sh")
        try (["set -euo pipefail", "cd '\(Bed.root.path)'"] + blocks).joined(separator: "\n\n").write(
            to: script, atomically: true, encoding: .utf8)
        let binaryDirectory = URL(fileURLWithPath: Bed.binary).deletingLastPathComponent().path
        let environment = [
            "SOURCE_BROKERS": east.brokers, "TARGET_BROKERS": west.brokers, "WORK": work.path, "METRICS_PORT": String(Bed.freePort()),
            "PATH": binaryDirectory + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"),
            "SESSION_TIMEOUT_MS": "3000", "HEARTBEAT_MS": "500",
        ]
        let log = work.appendingPathComponent("runbook.log").path
        let child = try Child(["/bin/bash", script.path], environment: environment, output: log, errors: log)
        let status = await child.exit(within: .seconds(200))
        if status == nil { await child.kill9() }
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        let bridgeLog = String(((try? String(contentsOf: work.appendingPathComponent("bridge.log"), encoding: .utf8)) ?? "").suffix(1500))
        #expect(status == 0, "the runbook failed:\n\(output.suffix(3000))\nbridge: \(bridgeLog)")
        #expect(output.contains("CutoverComplete: 300 records copied, 1 group moved, target equal to source"), "\(output.suffix(2000))")

        // Billing read 120 records on east and the other 180 on west: each source position
        // once, none twice.
        let east120 = ((try? String(contentsOf: work.appendingPathComponent("billing-east.txt"), encoding: .utf8)) ?? "").split(
            separator: "\n"
        ).map(String.init)
        let westLines = ((try? String(contentsOf: work.appendingPathComponent("billing-west.txt"), encoding: .utf8)) ?? "").split(
            separator: "\n")
        var west180: [String] = []
        for line in westLines {
            var fields: [String: String] = [:]
            for pair in line.split(separator: ",") {
                let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
                if parts.count == 2 { fields[parts[0]] = parts[1] }
            }
            if let partition = fields["switchyard-source-partition"], let offset = fields["switchyard-source-offset"] {
                west180.append("\(partition):\(offset)")
            }
        }
        #expect(east120.count == 120 && west180.count == 180, "east \(east120.count), west \(west180.count)")
        #expect(Set(east120).isDisjoint(with: Set(west180)), "records read on east came again on west")
        let all = Set(east120).union(west180)
        #expect(all.count == 300, "\(all.count) distinct source positions read")
        let report = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: work.appendingPathComponent("cutover.json"))) as? [String: Any])
        #expect(report["condition"] as? String == "CutoverComplete")
        #expect((report["reconciliation"] as? [String: Any])?["equal"] as? Bool == true)
    }
}
