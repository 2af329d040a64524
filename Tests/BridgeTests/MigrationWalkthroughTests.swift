import Foundation
import Testing
import TestBedSupport

/// Runs the commands of docs/bridges.md, "Migration walkthrough", as written: the `sh` blocks
/// of that section in order, with bash, against the test bed's rabbitmq-server and a mock
/// Kafka cluster; then checks what they left in Kafka and in the consumers' output.
@Suite("Migration walkthrough", .serialized, .rabbitMQBroker(.shared))
struct MigrationWalkthroughTests {
    /// The `sh` code blocks between `## Migration walkthrough` and the next `## ` heading.
    static func walkthroughCommands() throws -> [String] {
        try commands(in: "docs/bridges.md", section: "Migration walkthrough")
    }

    /// The `sh` code blocks of a document's section: from its `## ` heading (which starts with
    /// `section`) to the next one.
    static func commands(in file: String, section heading: String) throws -> [String] {
        let text = try String(contentsOf: Bed.root.appendingPathComponent(file), encoding: .utf8)
        guard let start = text.range(of: "\n## \(heading)") else { return [] }
        var section = text[start.upperBound...]
        if let end = section.range(of: "\n## ") { section = section[..<end.lowerBound] }
        var blocks: [String] = []
        var current: [Substring]?
        for line in section.split(separator: "\n", omittingEmptySubsequences: false) {
            if current == nil, line == "```sh" {
                current = []
            } else if current != nil, line == "```" {
                blocks.append(current!.joined(separator: "\n"))
                current = nil
            } else {
                current?.append(line)
            }
        }
        return blocks
    }

    static func cleanQueues(_ url: String) async {
        for queue in ["shop.to-kafka", "shipping"] {
            _ = try? await sh("amqp-delete-queue --url \"$AMQP_URL\" -q '\(queue)' >/dev/null 2>&1 || true", environment: ["AMQP_URL": url])
        }
    }

    @Test(.timeLimit(.minutes(3)))
    func theDocumentedMigrationWorks() async throws {
        let blocks = try Self.walkthroughCommands()
        #expect(blocks.count >= 8, "docs/bridges.md lost its walkthrough commands (found \(blocks.count) blocks)")
        let url = try await Rabbit.url()
        let kafka = try await Cluster.start(["orders.created": 4])
        defer { kafka.terminate() }
        await Self.cleanQueues(url)
        let work = try Bed.scratch("migration")
        let script = work.appendingPathComponent("walkthrough.sh")
        try (["set -euo pipefail", "cd '\(Bed.root.path)'"] + blocks).joined(separator: "\n\n").write(
            to: script, atomically: true, encoding: .utf8)
        let binaryDirectory = URL(fileURLWithPath: Bed.binary).deletingLastPathComponent().path
        let environment = [
            "AMQP_URL": url, "KAFKA_BROKERS": kafka.brokers, "WORK": work.path,
            "LEGACY_PORT": String(Bed.freePort()), "KAFKA_PORT": String(Bed.freePort()),
            "PATH": binaryDirectory + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"),
            "SESSION_TIMEOUT_MS": "3000", "HEARTBEAT_MS": "500",
        ]
        let log = work.appendingPathComponent("walkthrough.log").path
        let child = try Child(["/bin/bash", script.path], environment: environment, output: log, errors: log)
        let status = await child.exit(within: .seconds(150))
        if status == nil { await child.kill9() }
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        let bridgeLogs = ["legacy-to-kafka.log", "kafka-to-legacy.log"].map { name in
            "\(name): " + String(((try? String(contentsOf: work.appendingPathComponent(name), encoding: .utf8)) ?? "").suffix(1500))
        }.joined(separator: "\n")
        #expect(status == 0, "the walkthrough failed:\n\(output.suffix(3000))\n\(bridgeLogs)")

        // Kafka holds each event once: 200 bridged from RabbitMQ, 50 produced on Kafka, and the
        // 10 late events that the bounded run drained.
        let records = await kafka.records("orders.created")
        #expect(records.count == 260, "orders.created holds \(records.count) records")
        let bridged = records.filter { $0.header("switchyard-origin") == "legacy" }
        let bridgedIDs: [String] = (0..<200).map { String($0) } + (250..<260).map { String($0) }
        let bridgedKeys: [String] = bridged.map(\.key)
        #expect(Set(bridgedKeys) == Set(bridgedIDs), "bridged events keyed by order id")
        #expect(
            output.split(separator: "\n").contains("0"),
            "the bounded run left nothing in shop.to-kafka (deleted with 0 messages): \(output.suffix(500))")
        #expect(bridged.allSatisfy { $0.header("amqp-content-type") == "application/json" && $0.header("source") == "web" })
        let native = records.filter { $0.header("switchyard-origin") == nil }
        #expect(Set(native.map(\.key)) == Set((200..<250).map(String.init)))
        // Billing read the 200 bridged events from Kafka.
        let billing = ((try? String(contentsOf: work.appendingPathComponent("billing.txt"), encoding: .utf8)) ?? "").split(separator: "\n")
        #expect(billing.count == 200)
        // Shipping, still on RabbitMQ, received every event exactly once.
        let shipping = ((try? String(contentsOf: work.appendingPathComponent("shipping.txt"), encoding: .utf8)) ?? "").split(
            separator: "\n")
        let ids = shipping.compactMap { line -> String? in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return nil }
            return object["id"] as? String
        }
        #expect(ids.count == 250 && Set(ids) == Set((0..<250).map(String.init)), "shipping got \(ids.count) events")
        await Self.cleanQueues(url)
    }
}
