import Foundation
import Testing
import TestBedSupport
#if canImport(Glibc)
    import Glibc
#endif
@testable import RabbitMQConnector
import SwitchyardCore

/// Two `switchyard` processes on one queue with fencing: the second consumes nothing while the
/// first lives, and takes over when the first is killed, so a duplicated or restarted pod
/// never doubles consumption.
@Suite("RabbitMQ source fencing", .serialized, .rabbitMQBroker(.shared))
struct RabbitMQFencingTests {
    func values(_ file: URL) -> [String] {
        guard let text = try? String(contentsOf: file, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return nil }
            return object["value"] as? String
        }
    }

    /// `slow`: a target that writes at most 100 messages a second (batches of 10, 100 ms each),
    /// so that the first process still has most of the queue ahead of it when the second
    /// starts, however loaded the machine; the second process writes at full speed.
    func document(queue: String, output: URL, fencing: String, declare: Bool, slow: Bool) throws -> String {
        let declaration = declare ? ", declare: {queue: {durable: true}}" : ""
        return """
            sources:
              - name: orders
                rabbitmq: {url: "\(try TestBed.amqpURL())", queue: \(queue), prefetch: 100, fencing: \(fencing), standbyInterval: 200ms\(declaration)}
            targets:
              - name: archive
                file: {path: "\(output.path)", fsync: false\(slow ? ", delay: 100ms" : "")}
                batching: {maxMessages: \(slow ? 10 : 500), maxDelay: 5ms}
            routes:
              - {from: [orders], to: [archive]}
            observability: {listen: ""}
            """
    }

    func takeover(fencing: String) async throws {
        let count = 3000
        let queue = TestBed.uniqueName("fencing-\(fencing)")
        let declare = fencing == "singleActiveConsumer"
        if !declare { try Admin().declare(queue) }
        defer { try? Admin().delete(queue) }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "switchyard-fencing-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let outputs = [directory.appendingPathComponent("a.ndjson"), directory.appendingPathComponent("b.ndjson")]
        let logs = [directory.appendingPathComponent("a.log"), directory.appendingPathComponent("b.log")]
        var configs: [URL] = []
        for (index, output) in outputs.enumerated() {
            let config = directory.appendingPathComponent("\(index).yaml")
            try document(queue: queue, output: output, fencing: fencing, declare: declare, slow: index == 0).write(
                to: config, atomically: true, encoding: .utf8)
            configs.append(config)
        }
        let first = try startSwitchyard(configs[0], log: logs[0])
        if declare {
            await eventually("the first process declared the queue", within: .seconds(30)) { (try? Admin().messageCount(queue)) != nil }
        }
        try await RabbitMQBrokerTests().publish(count, to: queue)
        await eventually("the first process consumes", within: .seconds(60)) { values(outputs[0]).count >= 200 }
        let second = try startSwitchyard(configs[1], log: logs[1])
        defer {
            second.terminate()
            second.waitUntilExit()
        }
        // The second process is connected and waiting for its turn.
        let log = { (try? String(contentsOf: logs[1], encoding: .utf8)) ?? "" }
        if fencing == "exclusive" {
            await eventually("the second process stands by", within: .seconds(30)) { log().contains("stands by") }
        } else {
            await eventually("the second process consumes the queue", within: .seconds(30)) { log().contains("rabbitmq source connected") }
        }
        try await Task.sleep(for: .seconds(1))
        // Messages waited in the queue while both processes lived: without fencing the second
        // would have taken some of them.
        let waiting = try Admin().messageCount(queue)
        #expect(waiting > 0, "the queue still had ready messages while both processes lived")
        #expect(values(outputs[0]).count < count, "the kill lands mid-stream")
        #expect(
            values(outputs[1]).isEmpty, "the second process consumed nothing while the first lived: \(values(outputs[1]).count) messages")
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()

        let expected = Set((0..<count).map { "{\"n\":\($0)}" })
        await eventually("the second process took over and every message arrived", within: .seconds(90)) {
            Set(values(outputs[0]) + values(outputs[1])).isSuperset(of: expected)
        }
        await eventually("the queue is fully acknowledged", within: .seconds(30)) {
            (try? TestBed.queueCounts(queue)).map { $0?.ready == 0 && $0?.unacknowledged == 0 } ?? false
        }
        let all = values(outputs[0]) + values(outputs[1])
        #expect(Set(all) == expected, "nothing lost, nothing invented")
        // Duplicates only for what the killed process had in flight (at most the prefetch).
        #expect(all.count - Set(all).count <= 100, "duplicates: \(all.count - Set(all).count)")
    }

    @Test(.timeLimit(.minutes(3)))
    func anExclusiveConsumerKeepsTheSecondProcessOnStandbyUntilTheFirstDies() async throws {
        try await takeover(fencing: "exclusive")
    }

    @Test(.timeLimit(.minutes(3)))
    func aSingleActiveConsumerQueueDeliversToOneProcessAtATime() async throws {
        try await takeover(fencing: "singleActiveConsumer")
    }

    @Test func singleActiveConsumerNeedsTheQueueDeclaredAndAgreeingArguments() throws {
        let url = Node.quoted("amqp://guest:guest@127.0.0.1:5672/%2f")
        let undeclared = decode(.source, .object([("url", url), ("queue", .text("q")), ("fencing", .text("singleActiveConsumer"))]))
        #expect(undeclared.issues.map(\.message).contains { $0.contains("needs declare.queue") }, "\(undeclared.issues)")
        let contradicting = decode(
            .source,
            .object([
                ("url", url), ("queue", .text("q")), ("fencing", .text("singleActiveConsumer")),
                ("declare", .object([("queue", .object([("arguments", .object([("x-single-active-consumer", .text("false"))]))]))])),
            ]))
        #expect(contradicting.issues.map(\.message).contains { $0.contains("contradicts") }, "\(contradicting.issues)")
        let declared = decode(
            .source,
            .object([
                ("url", url), ("queue", .text("q")), ("fencing", .text("singleActiveConsumer")),
                ("declare", .object([("queue", .object([("durable", .text("true"))]))])),
            ]))
        #expect(declared.issues.isEmpty, "\(declared.issues)")
        let source = try makeSource(
            .object([
                ("url", url), ("queue", .text("q")), ("fencing", .text("singleActiveConsumer")),
                ("declare", .object([("queue", .object([("durable", .text("true"))]))])),
            ]))
        #expect(source.queueDeclaration?.arguments.contains { $0.0 == "x-single-active-consumer" && $0.1 == .bool(true) } == true)
    }
}
