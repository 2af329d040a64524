import Testing
@testable import RabbitMQConnector
import SwitchyardCore

/// Option validation of the `rabbitmq` source and target (no broker needed).
@Suite struct RabbitMQOptionsTests {
    func issues(_ role: ConnectorRole, _ options: Node) -> [ConfigIssue] {
        decode(role, options).issues
    }

    @Test func aValidSourceWithDeclarationsDecodes() throws {
        let (decoded, problems) = decode(
            .source,
            .object([
                ("url", .quoted("amqps://app:secret@rabbit.example:5671/orders")),
                ("queue", .quoted("orders")),
                ("prefetch", .text("200")),
                ("tls", .object([("ca", .quoted("/etc/ca.pem")), ("verify", .text("true"))])),
                (
                    "declare",
                    .object([
                        (
                            "queue",
                            .object([
                                (
                                    "arguments",
                                    .object([
                                        ("x-queue-type", .quoted("quorum")), ("x-dead-letter-exchange", .quoted("dlx")),
                                        ("x-max-length", .text("1000")),
                                    ])
                                )
                            ])
                        ),
                        ("exchanges", .list([.object([("name", .quoted("orders")), ("type", .quoted("topic"))])])),
                        ("bindings", .list([.object([("exchange", .quoted("orders")), ("routingKey", .quoted("orders.#"))])])),
                    ])
                ),
            ]))
        guard let entry = decoded else {
            Issue.record("expected valid options: \(problems)")
            return
        }
        let queue = try #require(entry.options.object("declare")?.object("queue"))
        let arguments = RabbitMQOptions.fieldTable(queue, "arguments")
        #expect(arguments.map(\.0) == ["x-queue-type", "x-dead-letter-exchange", "x-max-length"])
        #expect(arguments[0].1 == .string(Array("quorum".utf8)))
        #expect(arguments[2].1 == .int(1000))
        let source =
            try RabbitMQSource.kind.make(ConnectorSetup(name: "s", options: entry.options, logger: quietLogger, memoryLimit: 256 << 20))
            as! RabbitMQSource
        #expect(
            source.settings.url == AMQPURL(host: "rabbit.example", port: 5671, user: "app", password: "secret", vhost: "orders", tls: true))
        #expect(source.settings.url.redacted == "amqps://app@rabbit.example:5671/orders")
        #expect(source.prefetch == 200)
    }

    @Test func aBadURLAMissingQueueAndPrefetchZeroAreReportedWithTheirPaths() {
        let found = issues(.source, .object([("url", .quoted("http://user:hunter2@rabbit:5672/")), ("prefetch", .text("0"))]))
        let text = found.map(\.description)
        #expect(found.contains { $0.path == "spec.sources[0].rabbitmq.queue" && $0.message == "required field is missing" }, "\(text)")
        #expect(found.contains { $0.path == "spec.sources[0].rabbitmq.prefetch" && $0.message.contains("at least 1") }, "\(text)")
        let url = issues(.source, .object([("url", .quoted("http://user:hunter2@rabbit:5672/")), ("queue", .quoted("q"))]))
        #expect(url.contains { $0.path == "spec.sources[0].rabbitmq.url" && $0.message.contains("amqp://") }, "\(url)")
        let port = issues(.target, .object([("url", .quoted("amqp://user:hunter2@rabbit:port/"))]))
        #expect(port.contains { $0.path == "spec.targets[0].rabbitmq.url" }, "\(port)")
        #expect(!(text + url.map(\.description) + port.map(\.description)).joined().contains("hunter2"), "the password is never shown")
    }

    @Test func impossibleCombinationsAreReported() {
        let tls = issues(
            .source,
            .object([
                ("url", .quoted("amqp://rabbit/%2f")), ("queue", .quoted("q")),
                ("tls", .object([("cert", .quoted("/c.pem"))])),
            ]))
        #expect(tls.contains { $0.path == "spec.sources[0].rabbitmq.tls" && $0.message.contains("amqps://") }, "\(tls)")
        #expect(tls.contains { $0.path == "spec.sources[0].rabbitmq.tls.key" }, "\(tls)")
        let argument = issues(
            .source,
            .object([
                ("url", .quoted("amqp://rabbit/%2f")), ("queue", .quoted("q")),
                ("declare", .object([("queue", .object([("arguments", .object([("x-queue-type", .list([.text("quorum")]))]))]))])),
            ]))
        #expect(argument.contains { $0.path == "spec.sources[0].rabbitmq.declare.queue.arguments.x-queue-type" }, "\(argument)")
        let unknown = issues(.target, .object([("url", .quoted("amqp://rabbit/%2f")), ("routing_key", .quoted("x"))]))
        #expect(unknown.contains { $0.path == "spec.targets[0].rabbitmq.routing_key" }, "\(unknown)")
    }

    @Test func prefetchIsCappedSoThatItFitsAQuarterOfTheByteBudget() {
        // 16 MiB budget, 64 KiB per message: a quarter is 4 MiB, 64 messages.
        #expect(RabbitMQSource.effectivePrefetch(requested: 500, estimate: 64 << 10, memoryLimit: 16 << 20) == 64)
        #expect(RabbitMQSource.effectivePrefetch(requested: 500, estimate: 1 << 10, memoryLimit: 256 << 20) == 500)
        #expect(RabbitMQSource.effectivePrefetch(requested: 500, estimate: 1 << 30, memoryLimit: 1 << 20) == 1)
    }
}
