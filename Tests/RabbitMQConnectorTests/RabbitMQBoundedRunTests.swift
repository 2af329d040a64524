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
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "switchyard-bounded-\(UInt32.random(in: 0...UInt32.max))")
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

    /// `switchyard cutover` on a RabbitMQ source: refused while the queue has a consumer (a
    /// bridge still running), and with --group (a queue has no groups); then the queue is
    /// drained by a bounded run and found empty, and the report says so.
    @Test(.timeLimit(.minutes(3)))
    func aCutoverDrainsTheQueueAndRefusesWhileItHasAConsumer() async throws {
        let count = 2000
        let queue = TestBed.uniqueName("cutover")
        try Admin().declare(queue)
        defer { try? Admin().delete(queue) }
        try await RabbitMQBrokerTests().publish(count, to: queue)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "switchyard-cutover-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        func document(_ name: String) throws -> (config: URL, output: URL) {
            let output = directory.appendingPathComponent("\(name).ndjson")
            let config = directory.appendingPathComponent("\(name).yaml")
            try """
            sources:
              - name: legacy
                rabbitmq: {url: "\(try TestBed.amqpURL())", queue: \(queue), prefetch: 50, quietPeriod: 1s}
            targets:
              - name: archive
                file: {path: "\(output.path)", fsync: false}
                batching: {maxMessages: 50}
            routes:
              - {from: [legacy], to: [archive]}
            observability: {listen: ""}
            """.write(to: config, atomically: true, encoding: .utf8)
            return (config, output)
        }
        let (config, output) = try document("cutover")
        _ = config
        func lines(_ file: URL) -> Int { ((try? String(contentsOf: file, encoding: .utf8)) ?? "").split(separator: "\n").count }
        func cutover(_ arguments: [String]) async throws -> (status: Int32, log: String) {
            let log = directory.appendingPathComponent("cutover-\(UInt32.random(in: 0...UInt32.max)).log")
            let process = Process()
            process.executableURL = TestBed.root.appendingPathComponent(".build/debug/switchyard")
            process.arguments = ["cutover", "-c", config.path] + arguments
            _ = FileManager.default.createFile(atPath: log.path, contents: nil)
            let handle = try FileHandle(forWritingTo: log)
            process.standardOutput = handle
            process.standardError = handle
            try process.run()
            let deadline = ContinuousClock.now + .seconds(90)
            while process.isRunning && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
            return (process.terminationStatus, (try? String(contentsOf: log, encoding: .utf8)) ?? "")
        }

        // A consumer on the queue (a bridge not stopped; here amqp-consume holding one message
        // unacknowledged): refused, nothing done.
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        holder.arguments = ["amqp-consume", "--url", try TestBed.amqpURL(), "-q", queue, "-p", "1", "--", "sleep", "120"]
        holder.standardOutput = FileHandle.nullDevice
        holder.standardError = FileHandle.nullDevice
        try holder.run()
        // amqp-consume waits for its command before it looks at signals, and the command
        // inherits its socket: SIGKILL to both closes the connection, and the broker requeues
        // the message it held.
        func stopHolder() {
            let parent = holder.processIdentifier
            // Its children, from /proc (field 4 of /proc/PID/stat is the parent).
            for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
                guard let pid = Int32(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                    let close = stat.lastIndex(of: ")")
                else { continue }
                let fields = stat[stat.index(after: close)...].split(separator: " ")
                if fields.count > 1, Int32(fields[1]) == parent { kill(pid, SIGKILL) }
            }
            kill(parent, SIGKILL)
        }
        defer { if holder.isRunning { stopHolder() } }
        func consumers() throws -> Int {
            let listed = try TestBed.rabbitmqctl(["list_queues", "-q", "--no-table-headers", "name", "consumers"])
            for line in listed.split(separator: "\n") {
                let fields = line.split(whereSeparator: { $0 == "\t" || $0 == " " })
                if fields.count == 2, fields[0] == queue { return Int(fields[1]) ?? 0 }
            }
            return 0
        }
        let deadline = ContinuousClock.now + .seconds(30)
        while try consumers() == 0 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
        let refused = try await cutover([])
        stopHolder()
        while holder.isRunning { try await Task.sleep(for: .milliseconds(20)) }
        #expect(refused.status == 1)
        #expect(
            refused.log.contains("has 1 consumer: a bridge (or another consumer) still reads it")
                && refused.log.contains("Nothing was done"), "\(refused.log)")
        #expect(lines(output) == 0, "the refused cutover wrote nothing")
        while try consumers() > 0 && ContinuousClock.now < deadline + .seconds(10) { try await Task.sleep(for: .milliseconds(100)) }

        let grouped = try await cutover(["--group", "billing"])
        #expect(grouped.status == 1 && grouped.log.contains("has no consumer groups to move"), "\(grouped.log)")

        // Nobody consumes: the cutover drains the queue (the held message came back) and finds
        // it empty.
        let depth = try Admin().messageCount(queue)
        #expect(depth == count, "\(depth) of \(count) in the queue")
        let report = directory.appendingPathComponent("report.json")
        let done = try await cutover(["--report", report.path])
        #expect(done.status == 0, "\(done.log)")
        #expect(done.log.contains("CutoverComplete: queue '\(queue)' drained (\(depth) messages at the start, 0 left)"), "\(done.log)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: report)) as? [String: Any])
        #expect(
            object["condition"] as? String == "CutoverComplete" && object["queuedAtStart"] as? Int == depth
                && object["queuedAfter"] as? Int == 0)
        #expect(try Admin().messageCount(queue) == 0)
        #expect(lines(output) == count, "\(lines(output)) of \(count) written")
    }
}
