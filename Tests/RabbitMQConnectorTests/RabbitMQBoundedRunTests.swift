import Foundation
import Testing
import TestBedSupport
@testable import RabbitMQConnector
import SwitchyardCore

/// A bounded run (`switchyard run --stop-at end`) from a RabbitMQ queue: the source stops once
/// the queue stayed empty for its quiet period, and the process exits 0 with everything
/// written and acknowledged.
@Suite("RabbitMQ bounded run", .serialized, .rabbitMQBroker(.shared))
struct RabbitMQBoundedRunTests {
    @Test func theQuietWatchNeedsAnEmptyQueueAndNoDeliveryForTheWholePeriod() {
        var watch = RabbitMQSource.QuietWatch()
        let start = ContinuousClock.now
        let period = Duration.seconds(5)
        func look(_ idle: Bool, _ delivered: Int, at seconds: Double) -> Bool {
            watch.observe(idle: idle, delivered: delivered, lasting: period, now: start + .seconds(seconds))
        }
        #expect(!look(true, 10, at: 0), "the first look only notes the count")
        #expect(!look(true, 10, at: 1))
        #expect(!look(true, 10, at: 5.5), "quiet since 1 s only")
        #expect(look(true, 10, at: 6))
        // A delivery, or a queue that is not empty, starts the period again.
        #expect(!look(true, 11, at: 7))
        #expect(!look(true, 11, at: 8))
        #expect(!look(false, 11, at: 12))
        #expect(!look(true, 11, at: 13))
        #expect(!look(true, 11, at: 17))
        #expect(look(true, 11, at: 18))
    }

    @Test(.timeLimit(.minutes(2)))
    func aBoundedRunEmptiesTheQueueAndExitsZero() async throws {
        let count = 3000
        let queue = TestBed.uniqueName("bounded")
        try Admin().declare(queue)
        defer { try? Admin().delete(queue) }
        try await RabbitMQBrokerTests().publish(count, to: queue)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-bounded-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let output = directory.appendingPathComponent("out.ndjson")
        let log = directory.appendingPathComponent("run.log")
        let config = directory.appendingPathComponent("bounded.yaml")
        try """
        sources:
          - name: orders
            rabbitmq: {url: "\(try TestBed.amqpURL())", queue: \(queue), prefetch: 200, quietPeriod: 1s}
        targets:
          - name: archive
            file: {path: "\(output.path)", fsync: false}
        routes:
          - {from: [orders], to: [archive]}
        observability: {listen: ""}
        """.write(to: config, atomically: true, encoding: .utf8)
        let process = try startSwitchyard(config, log: log, arguments: ["--stop-at", "end"])
        let deadline = ContinuousClock.now + .seconds(60)
        while process.isRunning && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        let logText = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        #expect(!process.isRunning, "the bounded run ended by itself: \(logText)")
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(logText)")
        #expect(logText.contains("the queue stayed empty"), "\(logText)")
        let lines = ((try? String(contentsOf: output, encoding: .utf8)) ?? "").split(separator: "\n")
        #expect(lines.count == count, "every message once: \(lines.count)")
        #expect(try Admin().messageCount(queue) == 0)
        #expect(try TestBed.queueCounts(queue)?.unacknowledged == 0, "everything acknowledged")
    }
}
