import Foundation
import Testing
import TestBedSupport
#if canImport(Glibc)
    import Glibc
#endif
@testable import RabbitMQConnector
import SwitchyardCore

/// The `switchyard` binary (debug build) killed with SIGKILL mid-stream, then restarted.
@Suite("RabbitMQ source crash", .serialized, .rabbitMQBroker(.shared))
struct RabbitMQCrashTests {

    func start(_ config: URL, log: URL) throws -> Process {
        try startSwitchyard(config, log: log)
    }

    func lines(_ file: URL) -> [String] {
        guard let text = try? String(contentsOf: file, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").map(String.init)
    }

    /// The `value` of each NDJSON line (a message `{"n":i}` is stored as a JSON string).
    func values(_ file: URL) -> [String] {
        lines(file).compactMap { line in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return nil }
            return object["value"] as? String
        }
    }

    @Test(.timeLimit(.minutes(3)))
    func afterKill9AndARestartEveryMessageArrivesAtLeastOnce() async throws {
        let count = 5000
        let queue = TestBed.uniqueName("crash")
        try Admin().declare(queue)
        defer { try? Admin().delete(queue) }
        try await RabbitMQBrokerTests().publish(count, to: queue)

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "switchyard-rabbitmq-crash-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let output = directory.appendingPathComponent("out.ndjson")
        let log = directory.appendingPathComponent("switchyard.log")
        let config = directory.appendingPathComponent("crash.yaml")
        // A slow file target (batches of 50, fsync and a 20 ms delay each: at least 2 s for
        // everything) so that the kill lands mid-stream.
        try """
        sources:
          - name: orders
            rabbitmq: {url: "\(try TestBed.amqpURL())", queue: \(queue), prefetch: 200}
        targets:
          - name: archive
            file: {path: "\(output.path)", delay: 20ms}
            batching: {maxMessages: 50, maxDelay: 5ms}
        routes:
          - {from: [orders], to: [archive]}
        observability: {listen: ""}
        """.write(to: config, atomically: true, encoding: .utf8)

        let first = try start(config, log: log)
        await eventually("some messages were written", within: .seconds(60)) { lines(output).count >= 500 }
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        let beforeRestart = values(output).count
        #expect(beforeRestart < count, "the kill landed mid-stream")

        let second = try start(config, log: log)
        let expected = Set((0..<count).map { "{\"n\":\($0)}" })
        await eventually("every message arrived", within: .seconds(90)) { Set(values(output)).isSuperset(of: expected) }
        await eventually("the queue is fully acknowledged", within: .seconds(30)) {
            (try? Admin().messageCount(queue)) == 0 && (try? TestBed.queueCounts(queue)?.unacknowledged) == 0
        }
        second.terminate()
        second.waitUntilExit()
        #expect(second.terminationStatus == 0, "\((try? String(contentsOf: log, encoding: .utf8)) ?? "")")

        let all = values(output)
        let duplicates = all.count - Set(all).count
        #expect(Set(all) == expected, "nothing lost, nothing invented")
        // At least once: duplicates are possible only for what was in flight at the kill
        // (never more than the prefetch: the broker holds at most that many unacknowledged).
        #expect(duplicates <= 200, "duplicates: \(duplicates)")
        #expect(try Admin().messageCount(queue) == 0)
        try? FileManager.default.removeItem(at: directory)
    }
}
