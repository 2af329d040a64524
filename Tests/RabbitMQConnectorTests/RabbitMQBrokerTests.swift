import Synchronization
import Testing
import TestBedSupport
@testable import RabbitMQConnector
import SwitchyardCore

/// The `rabbitmq` source and target against the test bed's rabbitmq-server.
@Suite("RabbitMQ connectors against a real broker", .serialized)
struct RabbitMQBrokerTests {
    /// Publishes `count` JSON messages `{"n":i}` to `queue` through the default exchange with
    /// the `rabbitmq` target (properties and a header from templates).
    func publish(_ count: Int, to queue: String, start: Int = 0) async throws {
        let publisher = try makeTarget(
            .object([
                ("url", .quoted(try TestBed.amqpURL())),
                ("routingKey", .quoted(queue)),
                (
                    "properties",
                    .object([
                        ("contentType", .quoted("application/json")),
                        ("messageId", .quoted("id-{{ offset }}")),
                        ("correlationId", .quoted("corr-{{ offset }}")),
                    ])
                ),
                ("headers", .object([("tenant", .quoted("acme"))])),
            ]))
        try await publisher.open()
        var next = start
        while next < start + count {
            let size = min(500, start + count - next)
            let batch = (next..<(next + size)).map {
                Message(value: Array("{\"n\":\($0)}".utf8), channel: queue, timestamp: 1_700_000_000_000, offset: Int64($0))
            }
            let result = try await publisher.write(batch)
            #expect(result.failures.isEmpty)
            next += size
        }
        await publisher.close()
    }

    func sourceOptions(_ queue: String, prefetch: Int = 300) throws -> Node {
        .object([("url", .quoted(try TestBed.amqpURL())), ("queue", .quoted(queue)), ("prefetch", .text(String(prefetch)))])
    }

    @Test func everyPublishedMessageArrivesExactlyOnceInOrderWithHeadersAndProperties() async throws {
        let queue = TestBed.uniqueName("e2e")
        let admin = try Admin()
        try admin.declare(queue)
        defer { admin.delete(queue) }
        let count = 3000
        try await publish(count, to: queue)
        #expect(try admin.messageCount(queue) == count)

        let source = try makeSource(try sourceOptions(queue))
        let sink = RecordingTarget()
        let pipeline = PipelineHarness(source: source, targets: [("sink", sink)], to: ["sink"])
        await eventually("every message arrived") { sink.written.count >= count }
        await eventually("the ledger released every message") { !pipeline.context.ledger.hasPending }
        #expect(source.health == .up)
        await pipeline.shutdown()

        let written = sink.written
        #expect(written.count == count, "exactly once: no duplicates")
        #expect(written.map { String(decoding: $0.value, as: UTF8.self) } == (0..<count).map { "{\"n\":\($0)}" }, "in queue order")
        #expect(written.map(\.offset) == (1...count).map(Int64.init), "offset is the delivery tag")
        let message = try #require(written.first { $0.value == Array("{\"n\":7}".utf8) })
        #expect(message.channel == queue)
        #expect(message.timestamp == 1_700_000_000_000)
        #expect(message.headerText("amqp-content-type") == "application/json")
        #expect(message.headerText("amqp-message-id") == "id-7")
        #expect(message.headerText("amqp-correlation-id") == "corr-7")
        #expect(message.headerText("amqp-timestamp") == "1700000000")
        #expect(message.headerText("amqp-delivery-mode") == "2")
        #expect(message.headerText("amqp-redelivered") == "false")
        #expect(message.headerText("tenant") == "acme")
        #expect(source.health == .down("closed"))
        // Everything was acknowledged: nothing came back when the channel closed.
        #expect(try admin.messageCount(queue) == 0)
        #expect(source.droppedStaleAcknowledgements == 0)
    }

    @Test func aFailingTargetHoldsAcknowledgementsBackAndCloseReturnsTheMessages() async throws {
        let queue = TestBed.uniqueName("held")
        let admin = try Admin()
        try admin.declare(queue)
        defer { admin.delete(queue) }
        try await publish(40, to: queue)

        let source = try makeSource(try sourceOptions(queue))
        let failing = RecordingTarget { _, _ in throw ConnectorError.retriable("the target is down for this test") }
        let pipeline = PipelineHarness(source: source, targets: [("sink", failing)], to: ["sink"])
        await eventually("the failing target was tried") { failing.calls >= 3 }
        // The broker holds all 40 as delivered but unacknowledged.
        try await eventually("the broker reports 40 unacknowledged messages", within: .seconds(60)) {
            guard let counts = try TestBed.queueCounts(queue) else { return false }
            return counts.ready == 0 && counts.unacknowledged == 40
        }
        #expect(failing.written.isEmpty)
        await pipeline.shutdown(drain: .milliseconds(200))
        // Closing the channel returned them to the queue.
        #expect(try admin.messageCount(queue) == 40)

        // A new consumer gets every one of them, marked redelivered.
        let again = try makeSource(try sourceOptions(queue))
        let sink = RecordingTarget()
        let second = PipelineHarness(source: again, targets: [("sink", sink)], to: ["sink"])
        await eventually("all 40 arrived again") { sink.written.count >= 40 }
        await eventually("the ledger released every message") { !second.context.ledger.hasPending }
        await second.shutdown()
        #expect(sink.written.count == 40)
        #expect(sink.written.allSatisfy { $0.headerText("amqp-redelivered") == "true" })
        #expect(try admin.messageCount(queue) == 0)
    }

    @Test func anUnroutableMandatoryPublishGoesToTheDeadLetterTarget() async throws {
        let input = TestBed.uniqueName("mandatory-in")
        let output = TestBed.uniqueName("mandatory-out")
        let admin = try Admin()
        try admin.declare(input)
        try admin.declare(output)
        defer {
            admin.delete(input)
            admin.delete(output)
        }
        try admin.connection.bindQueue(output, exchange: "amq.direct", routingKey: output, arguments: [])

        // Three messages; the second asks for a routing key nothing is bound to.
        let publisher = try makeTarget(
            .object([
                ("url", .quoted(try TestBed.amqpURL())), ("routingKey", .quoted(input)),
                ("headers", .object([("route", .quoted("{{ value }}"))])),
            ]))
        try await publisher.open()
        let routes = [output, "nowhere-\(output)", output]
        #expect(try await publisher.write(routes.map { Message(value: Array($0.utf8), channel: input) }).failures.isEmpty)
        await publisher.close()

        let source = try makeSource(try sourceOptions(input))
        let target = try makeTarget(
            .object([
                ("url", .quoted(try TestBed.amqpURL())), ("exchange", .quoted("amq.direct")),
                ("routingKey", .quoted("{{ headers.route }}")), ("mandatory", .text("true")),
            ]))
        let deadLetters = RecordingTarget()
        let pipeline = PipelineHarness(source: source, targets: [("out", target), ("dlq", deadLetters)], to: ["out"], deadLetter: "dlq")
        await eventually("the unroutable message was dead-lettered") { deadLetters.written.count == 1 }
        await eventually("the ledger released every message") { !pipeline.context.ledger.hasPending }
        await pipeline.shutdown()

        let dead = try #require(deadLetters.written.first)
        #expect(dead.value == Array("nowhere-\(output)".utf8))
        #expect(dead.headerText(DeadLetterHeaders.errorKind) == "permanent")
        #expect(dead.headerText(DeadLetterHeaders.error)?.contains("NO_ROUTE") == true, "\(dead.headerText(DeadLetterHeaders.error) ?? "")")
        #expect(try admin.messageCount(output) == 2)
        #expect(try admin.messageCount(input) == 0, "all three were acknowledged: two written, one dead-lettered")
    }

    @Test(.timeLimit(.minutes(5)), .rabbitMQBroker(.exclusive))
    func aBrokerRestartReconnectsLosesNothingAndNeverAcknowledgesAStaleTag() async throws {
        let queue = TestBed.uniqueName("restart")
        try Admin().declare(queue)
        defer { try? Admin().delete(queue) }
        try await publish(300, to: queue)

        let source = try makeSource(try sourceOptions(queue, prefetch: 50))
        // A slow target keeps messages in flight when the broker goes away.
        let sink = RecordingTarget { _, _ in
            try await Task.sleep(for: .milliseconds(20))
            return .allWritten
        }
        let pipeline = PipelineHarness(source: source, targets: [("sink", sink)], to: ["sink"])
        await eventually("some messages arrived") { sink.written.count >= 50 }
        #expect(source.health == .up)
        #expect(source.connectionGeneration == 1)

        var restarted = false
        defer { if !restarted { try? TestBed.services(["start", "rabbitmq"]) } }
        try await TestBed.servicesOffPool(["stop", "rabbitmq"])
        await eventually("the source noticed the broker is gone") { source.health != .up }
        try await Task.sleep(for: .milliseconds(500))
        #expect(source.health != .up, "readiness stays off while the broker is down")
        try await TestBed.servicesOffPool(["start", "rabbitmq"])
        restarted = true
        await eventually("the source reconnected", within: .seconds(60)) { source.health == .up }
        #expect(source.connectionGeneration == 2)
        try await publish(200, to: queue, start: 300)

        let expected = Set((0..<500).map { "{\"n\":\($0)}" })
        await eventually("every message arrived at least once", within: .seconds(60)) {
            Set(sink.written.map { String(decoding: $0.value, as: UTF8.self) }).isSuperset(of: expected)
        }
        await eventually("the ledger released every message", within: .seconds(30)) {
            let ledger = pipeline.context.ledger
            return !ledger.ledger(for: 2).hasPending && !ledger.ledger(for: 1).hasPending
        }
        // An acknowledgement with a tag of the lost channel would make the broker close the new
        // channel (PRECONDITION_FAILED, unknown delivery tag) and force a third connection.
        #expect(source.connectionGeneration == 2)
        await pipeline.shutdown()
        #expect(try Admin().messageCount(queue) == 0, "everything was acknowledged in the end")
        let written = sink.written
        let redelivered = written.filter { $0.headerText("amqp-redelivered") == "true" }
        #expect(written.count - 500 <= redelivered.count, "duplicates are only redeliveries")
        #expect(Set(written.map(\.partition)) == [1, 2], "the shard is the connection generation")
    }

    @Test func aPublishToAMissingExchangeIsATargetDownError() async throws {
        let target = try makeTarget(
            .object([
                ("url", .quoted(try TestBed.amqpURL())), ("exchange", .quoted(TestBed.uniqueName("no-such-exchange"))),
            ]))
        try await target.open()
        do {
            _ = try await target.write([Message(value: Array("x".utf8), channel: "k")])
            Issue.record("the write should have failed")
        } catch let error as ConnectorError {
            #expect(error.kind == .targetDown)
            #expect(error.message.contains("404"))
        }
        #expect(target.health != .up)
        await target.close()
    }

    @Test func wrongCredentialsAreATargetDownErrorAndNeverShowThePassword() async throws {
        guard case .success(var url) = AMQPURL.parse(try TestBed.amqpURL()) else { throw TestBedMissing(message: "bad URL") }
        url.password = "hunter2-wrong"
        let text = "amqp://\(url.user):\(url.password)@\(url.host):\(url.port)/%2f"
        let target = try makeTarget(.object([("url", .quoted(text))]))
        do {
            try await target.open()
            Issue.record("the login should have failed")
        } catch let error as ConnectorError {
            #expect(error.kind == .targetDown, "\(error)")
            #expect(error.message.contains("login"), "\(error)")
            #expect(!error.message.contains("hunter2"))
        }
    }

    /// AMQP short strings hold 255 bytes. A message whose routing key, property or header name
    /// does not fit fails alone with its reason (to the dead-letter target) and the rest of the
    /// batch is published; a forwarded property header too long for the property travels as a
    /// table header. Before, such a message was encoded anyway and broke the batch.
    @Test func aMessageAMQPCannotCarryFailsAloneAndTheRestArrive() async throws {
        let queue = TestBed.uniqueName("shortstr")
        let admin = try Admin()
        try admin.declare(queue)
        defer { admin.delete(queue) }
        let target = try makeTarget(
            .object([
                ("url", .quoted(try TestBed.amqpURL())), ("routingKey", .quoted("{{ headers.route }}")),
                ("properties", .object([("messageId", .quoted("{{ headers.id }}"))])),
            ]))
        try await target.open()
        let long = String(repeating: "x", count: 300)
        func message(_ n: Int, route: String = queue, id: String = "id", extra: [Header] = []) -> Message {
            Message(
                value: Array("m\(n)".utf8), headers: [Header("route", route), Header("id", id)] + extra, channel: "in", offset: Int64(n))
        }
        let result = try await target.write([
            message(0),
            message(1, route: long),
            message(2, extra: [Header("amqp-content-type", long)]),
            message(3, id: long),
            message(4, extra: [Header(long, "v")]),
        ])
        await target.close()
        let failures = result.failures.map { "\($0.index): \($0.error)" }
        #expect(result.failures.map(\.index) == [1, 3, 4], "\(failures)")
        #expect(result.failures.allSatisfy { $0.error.kind == .permanent })
        #expect(failures.first?.contains("routing key template '{{ headers.route }}' renders 300 bytes") == true, "\(failures)")
        #expect(failures.dropFirst().first?.contains("properties.messageId renders 300 bytes") == true, "\(failures)")
        #expect(failures.last?.contains("header name of 300 bytes") == true, "\(failures)")

        let source = try makeSource(try sourceOptions(queue))
        let received = RecordingTarget()
        let pipeline = PipelineHarness(source: source, targets: [("out", received)], to: ["out"])
        await eventually("both publishable messages arrived") { received.written.count >= 2 }
        await eventually("the ledger released every message") { !pipeline.context.ledger.hasPending }
        await pipeline.shutdown()
        #expect(received.written.map(\.value) == [Array("m0".utf8), Array("m2".utf8)])
        let carried = try #require(received.written.last)
        #expect(carried.headerText("amqp-content-type") == long, "the long header arrived as a table header")
        #expect(try admin.messageCount(queue) == 0)
    }

    @Test func batchesStartedBeforeEarlierOnesAreConfirmedArriveInOrderAndResolveApart() async throws {
        let queue = TestBed.uniqueName("pipelined")
        let admin = try Admin()
        try admin.declare(queue)
        defer { admin.delete(queue) }
        let target = try makeTarget(
            .object([
                ("url", .quoted(try TestBed.amqpURL())), ("routingKey", .quoted("{{ headers.route }}")), ("mandatory", .text("true")),
            ]))
        try await target.open()
        // Four batches handed over before any confirm is awaited; the third holds one message
        // that no queue takes (mandatory: returned, a permanent failure of that message alone).
        var pending: [PendingWrite] = []
        for batch in 0..<4 {
            let messages = (0..<250).map { n -> Message in
                let number = batch * 250 + n
                let route = batch == 2 && n == 7 ? "\(queue)-nowhere" : queue
                return Message(value: Array("\(number)".utf8), headers: [Header("route", route)], channel: route, offset: Int64(number))
            }
            pending.append(try await target.start(messages))
        }
        var results: [WriteResult] = []
        for write in pending { results.append(try await write.result()) }
        await target.close()
        #expect(results.map(\.failures.count) == [0, 0, 1, 0])
        #expect(results[2].failures.first?.index == 7)
        #expect(results[2].failures.first?.error.kind == .permanent)
        #expect(try admin.messageCount(queue) == 999)

        let source = try makeSource(try sourceOptions(queue))
        let received = RecordingTarget()
        let pipeline = PipelineHarness(source: source, targets: [("out", received)], to: ["out"])
        await eventually("every routed message arrived") { received.written.count >= 999 }
        await pipeline.shutdown()
        let expected = (0..<1000).filter { $0 != 507 }.map { "\($0)" }
        let values = received.written.map { String(decoding: $0.value, as: UTF8.self) }
        #expect(values.count == expected.count)
        let firstOutOfOrder = values.indices.first { $0 < expected.count && values[$0] != expected[$0] }
        #expect(firstOutOfOrder == nil, "in publish order; first difference at \(firstOutOfOrder.map(String.init) ?? "-")")
    }
}
