import Foundation
import Testing
import TestBedSupport

/// A `switchyard run` that reads `queue` (declared and bound to `exchange` with `binding`)
/// into an NDJSON file: how these tests see what reached RabbitMQ, with headers and key.
func queueReader(queue: String, exchange: String?, binding: String = "#", directory: URL, name: String) async throws -> (Runtime, URL) {
    let output = directory.appendingPathComponent("\(name).ndjson")
    let config = directory.appendingPathComponent("\(name).yaml")
    let declare =
        exchange.map {
            """
                  declare:
                    exchanges: [{name: \($0), type: topic}]
                    queue: {durable: true}
                    bindings: [{exchange: \($0), routingKey: "\(binding)"}]
            """
        } ?? """
                  declare:
                    queue: {durable: true}
            """
    try """
    sources:
      - name: reader
        rabbitmq:
          url: "${env:AMQP_URL}"
          queue: \(queue)
    \(declare)
    targets:
      - name: file
        file: {path: \(output.path)}
    routes:
      - {from: [reader], to: [file]}
    observability: {listen: "127.0.0.1:${env:METRICS_PORT}"}
    """.write(to: config, atomically: true, encoding: .utf8)
    let runtime = try Runtime(config.path, environment: ["AMQP_URL": try await Rabbit.url()], name: name, directory: directory)
    return (runtime, output)
}

/// The lines of an NDJSON file target.
func ndjson(_ url: URL) -> [[String: Any]] {
    guard let text = try? String(contentsOf: url, encoding: .utf8) else { return [] }
    return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
}

/// The headers of one NDJSON line as (name, value) pairs.
func headers(_ line: [String: Any]) -> [(String, String)] {
    ((line["headers"] as? [[Any]]) ?? []).compactMap { pair in
        guard pair.count == 2, let name = pair[0] as? String, let value = pair[1] as? String else { return nil }
        return (name, value)
    }
}

func header(_ line: [String: Any], _ name: String) -> String? { headers(line).first { $0.0 == name }?.1 }

/// Publishes `count` JSON orders (`{"id": i, "total": i.5}`) to `exchange` with `routingKey`,
/// with AMQP properties and headers that differ per message, by running a generate source
/// into a rabbitmq target; returns when the process exited after the broker confirmed all.
func publishOrders(
    _ count: Int, exchange: String, routingKey: String, directory: URL,
    value: String = #"'{"id": {{ offset }}, "total": {{ offset }}.5}'"#
) async throws {
    let config = directory.appendingPathComponent("publisher.yaml")
    let declare = exchange.isEmpty ? "" : "declare: {exchanges: [{name: \(exchange), type: topic}]}"
    try """
    sources:
      - name: orders
        generate: {count: \(count), value: \(value), headers: {seq: "{{ offset }}", region: eu}}
    targets:
      - name: legacy
        rabbitmq:
          url: "${env:AMQP_URL}"
          exchange: "\(exchange)"
          routingKey: \(routingKey)
          \(declare)
          properties: {contentType: application/json, messageId: "m-{{ offset }}", correlationId: "c-{{ offset }}", type: order.created, appId: shop}
    routes:
      - {from: [orders], to: [legacy]}
    observability: {listen: ""}
    """.write(to: config, atomically: true, encoding: .utf8)
    let log = directory.appendingPathComponent("publisher.log").path
    let child = try Child(
        [Bed.binary, "run", "-c", config.path], environment: ["AMQP_URL": try await Rabbit.url()], output: log, errors: log)
    let status = await child.exit(within: .seconds(60))
    #expect(status == 0, "the publisher: \((try? String(contentsOfFile: log, encoding: .utf8))?.suffix(2000) ?? "")")
}

/// RabbitMQ into Kafka and back, through the example documents.
@Suite("RabbitMQ bridges", .serialized, .rabbitMQBroker(.shared))
struct RabbitMQBridgeTests {
    @Test(.timeLimit(.minutes(2)))
    func rabbitmqToKafkaMapsPropertiesToHeaders() async throws {
        let count = 1500
        let kafka = try await Cluster.start(["orders.created": 4])
        defer { kafka.terminate() }
        let queue = Bed.unique("bridge-to-kafka")
        let exchange = Bed.unique("shop")
        defer { Task { await Rabbit.deleteQueue(queue) } }
        let directory = try Bed.scratch("r2k")
        let bridge = try Runtime(
            Bed.config("bridge-rabbitmq-to-kafka.yaml"),
            environment: [
                "AMQP_URL": try await Rabbit.url(), "KAFKA_BROKERS": kafka.brokers, "BRIDGE_QUEUE": queue, "EXCHANGE": exchange,
            ], name: "bridge", directory: directory)
        // The bridge declares the exchange, its queue and the binding before it is ready.
        await eventually("the bridge is ready") { await bridge.status("/readyz") == 200 }
        try await publishOrders(count, exchange: exchange, routingKey: "orders.created", directory: directory)

        var records: [Record] = []
        await eventually("every message reached Kafka") {
            records = await kafka.records("orders.created")
            return records.count >= count
        }
        #expect(records.count == count)
        #expect(Set(records.map(\.key)) == Set((0..<count).map(String.init)), "keys are the order ids")
        for record in records {
            let id = record.key
            #expect(record.value == "{\"id\": \(id), \"total\": \(id).5}", "\(record)")
            #expect(record.header("amqp-content-type") == "application/json", "\(record)")
            #expect(record.header("amqp-message-id") == "m-\(id)" && record.header("amqp-correlation-id") == "c-\(id)", "\(record)")
            #expect(record.header("amqp-type") == "order.created" && record.header("amqp-app-id") == "shop", "\(record)")
            #expect(record.header("seq") == id && record.header("region") == "eu", "\(record)")
            #expect(record.header("amqp-exchange") == exchange, "\(record)")
            #expect(record.header("switchyard-origin") == "legacy" && record.header("switchyard-hops") == "1", "\(record)")
            // The AMQP timestamp (seconds) becomes the record's timestamp (milliseconds).
            #expect(record.timestamp > 1_700_000_000_000 && record.timestamp % 1000 == 0, "\(record)")
            #expect(record.header("amqp-timestamp").map { Int64($0)! * 1000 } == record.timestamp)
        }
        try await eventually("the queue is fully acknowledged") {
            guard let counts = try await Rabbit.counts(queue) else { return false }
            return counts.ready == 0 && counts.unacknowledged == 0
        }
        await eventually("the bridge lag is 0") { await bridge.metric("switchyard_bridge_lag_messages", ["source=\"legacy\""]) == 0 }
        #expect(await bridge.stop() == 0, "\(bridge.logText)")
    }

    @Test(.timeLimit(.minutes(2)))
    func kafkaToRabbitmqKeepsKeysHeadersAndProperties() async throws {
        let count = 1200
        let kafka = try await Cluster.start(["orders.created": 4])
        defer { kafka.terminate() }
        let exchange = Bed.unique("shop")
        let queue = Bed.unique("legacy-consumer")
        defer { Task { await Rabbit.deleteQueue(queue) } }
        let directory = try Bed.scratch("k2r")
        let (reader, output) = try await queueReader(
            queue: queue, exchange: exchange, binding: "orders.#", directory: directory, name: "reader")
        await eventually("the reader declared its queue") { await reader.status("/readyz") == 200 }
        try await kafka.produce(
            "orders.created", keyed: keyedLines("o", count),
            headers: [
                ("app", "shop"), ("amqp-content-type", "text/plain"), ("amqp-correlation-id", "batch-7"), ("amqp-priority", "3"),
            ])

        let bridge = try Runtime(
            Bed.config("bridge-kafka-to-rabbitmq.yaml"),
            environment: fastGroup.merging([
                "AMQP_URL": try await Rabbit.url(), "KAFKA_BROKERS": kafka.brokers, "TOPICS": "orders.created", "EXCHANGE": exchange,
                "GROUP": Bed.unique("k2r"),
            ]) { $1 }, name: "bridge", directory: directory)
        var lines: [[String: Any]] = []
        await eventually("every message reached the RabbitMQ queue") {
            lines = ndjson(output)
            return lines.count >= count
        }
        #expect(lines.count == count)
        #expect(Set(lines.compactMap { $0["key"] as? String }) == Set((0..<count).map { "k-o-\($0)" }), "keys travel in switchyard-key")
        for line in lines {
            let key = line["key"] as? String ?? ""
            #expect(line["value"] as? String == "v" + key.dropFirst(), "\(line)")
            #expect(line["channel"] as? String == "orders.created", "the topic is the routing key")
            #expect(header(line, "app") == "shop", "\(line)")
            // amqp-* headers became AMQP properties again, which the reader turns back into headers.
            #expect(header(line, "amqp-content-type") == "text/plain" && header(line, "amqp-correlation-id") == "batch-7", "\(line)")
            #expect(header(line, "amqp-priority") == "3", "\(line)")
            #expect(header(line, "amqp-exchange") == exchange, "\(line)")
            #expect(header(line, "switchyard-origin") == "kafka" && header(line, "switchyard-hops") == "1", "\(line)")
            #expect(header(line, "switchyard-key") == nil, "the key header becomes the key")
        }
        await eventually("the bridge lag is 0") { await bridge.metric("switchyard_bridge_lag_messages", ["source=\"kafka\""]) == 0 }
        #expect(await bridge.stop() == 0, "\(bridge.logText)")
        #expect(await reader.stop() == 0, "\(reader.logText)")
    }

    /// Several to several: a Kafka cluster and a RabbitMQ queue into renamed Kafka topics with a
    /// JSON envelope, and order notifications into RabbitMQ routed by a header.
    @Test(.timeLimit(.minutes(2)))
    func transformRenamesAndReshapes() async throws {
        let orders = 600
        let payments = 300
        let shop = try await Cluster.start(["orders": 4])
        let events = try await Cluster.start(["events.shop.orders": 4])
        defer { shop.terminate(); events.terminate() }
        let paymentsQueue = Bed.unique("payments")
        let prefix = Bed.unique("notify")
        let notifyQueue = "\(prefix).eu"
        defer {
            Task {
                await Rabbit.deleteQueue(paymentsQueue); await Rabbit.deleteQueue(notifyQueue)
            }
        }
        let directory = try Bed.scratch("transform")
        let (reader, output) = try await queueReader(queue: notifyQueue, exchange: nil, directory: directory, name: "notifications")
        await eventually("the notification queue exists") { await reader.status("/readyz") == 200 }
        // Half of the orders are of type order (notified), half refunds (not notified).
        let half = orders / 2
        let orderLines = (0..<half).map { "\($0)|{\"id\":\"o\($0)\",\"total\":\($0)}" }
        let refundLines = (half..<orders).map { "\($0)|{\"id\":\"o\($0)\",\"total\":\($0)}" }
        try await shop.produce("orders", keyed: orderLines, headers: [("type", "order"), ("region", "eu")])
        try await shop.produce("orders", keyed: refundLines, headers: [("type", "refund"), ("region", "eu")])

        let bridge = try Runtime(
            Bed.config("bridge-transform.yaml"),
            environment: fastGroup.merging([
                "SHOP_BROKERS": shop.brokers, "EVENTS_BROKERS": events.brokers, "ORDERS_TOPIC": "orders", "GROUP": Bed.unique("transform"),
                "AMQP_URL": try await Rabbit.url(), "PAYMENTS_QUEUE": paymentsQueue, "NOTIFY_PREFIX": prefix,
            ]) { $1 }, name: "bridge", directory: directory)
        await eventually("the bridge is ready") { await bridge.status("/readyz") == 200 }
        try await publishOrders(
            payments, exchange: "", routingKey: paymentsQueue, directory: directory,
            value: #"'{"id":"p{{ offset }}","amount":{{ offset }}}'"#)

        var shopEvents: [Record] = []
        var legacyEvents: [Record] = []
        await eventually("every event reached the events cluster") {
            shopEvents = await events.records("events.shop.orders")
            legacyEvents = await events.records("events.legacy.\(paymentsQueue)")
            return shopEvents.count >= orders && legacyEvents.count >= payments
        }
        #expect(shopEvents.count == orders && legacyEvents.count == payments)
        for record in shopEvents {
            let id = String(record.key.dropFirst())
            #expect(record.key.hasPrefix("o"))
            #expect(
                record.value
                    == "{\"origin\":\"shop\",\"channel\":\"orders\",\"id\":\"o\(id)\",\"payload\":{\"id\":\"o\(id)\",\"total\":\(id)}}",
                "\(record)")
            #expect(record.header("content-type") == "application/json" && record.header("region") == "eu", "\(record)")
        }
        #expect(Set(legacyEvents.map(\.key)) == Set((0..<payments).map { "p\($0)" }))
        for record in legacyEvents {
            let id = String(record.key.dropFirst())
            #expect(
                record.value
                    == "{\"origin\":\"legacy\",\"channel\":\"\(paymentsQueue)\",\"id\":\"p\(id)\",\"payload\":{\"id\":\"p\(id)\",\"amount\":\(id)}}",
                "\(record)")
            #expect(record.header("amqp-content-type") == "application/json")
        }
        var notifications: [[String: Any]] = []
        await eventually("every order notification reached RabbitMQ") {
            notifications = ndjson(output)
            return notifications.count >= half
        }
        #expect(notifications.count == half, "only type: order is notified")
        for line in notifications {
            let value = line["value"] as? String ?? ""
            let id = header(line, "amqp-message-id") ?? ""
            #expect(value == "{\"order\":\"\(id)\",\"total\":\(id.dropFirst())}", "\(line)")
            #expect(Int(id.dropFirst()).map { $0 < half } == true, "\(line)")
            #expect(header(line, "amqp-content-type") == "application/json")
        }
        #expect(await bridge.stop() == 0, "\(bridge.logText)")
        #expect(await reader.stop() == 0, "\(reader.logText)")
    }
}
