import CRabbitMQ
import SwitchyardCore

/// The options shared by the `rabbitmq` source and target, and their reading.
enum RabbitMQOptions {
    static let tlsSchema = ObjectSchema(
        doc: "TLS for amqps:// URLs.",
        [
            OptionField("ca", .string, doc: "PEM file of the certificate authorities that sign the broker's certificate"),
            OptionField("cert", .string, doc: "PEM file of the client certificate (with tls.key)"),
            OptionField("key", .string, doc: "PEM file of the client's private key (with tls.cert)"),
            OptionField("verify", .bool, default: "true", doc: "verify the broker's certificate and host name"),
        ])

    /// The AMQP header that carries a message key across RabbitMQ (no key field in AMQP 0-9-1).
    static let defaultKeyHeader = "switchyard-key"

    static let connectionFields: [OptionField] = [
        OptionField(
            "url", .secret, required: true,
            doc:
                "amqp://user:password@host:port/vhost or amqps://... (vhost percent-encoded, %2f for /); use ${file:...} for the password. Never shown"
        ),
        OptionField("tls", .object(tlsSchema), doc: "TLS settings for amqps:// URLs"),
        OptionField("heartbeat", .duration, default: "30s", doc: "AMQP heartbeat interval, whole seconds; 0 turns heartbeats off"),
    ]

    static let exchangeSchema = ObjectSchema(
        doc: "An exchange to declare.",
        [
            OptionField("name", .string, required: true, doc: "exchange name"),
            OptionField(
                "type", .choice(["direct", "fanout", "topic", "headers", "x-consistent-hash", "x-delayed-message"]), default: "direct",
                doc: "exchange type"),
            OptionField("durable", .bool, default: "true", doc: "survives a broker restart"),
            OptionField("autoDelete", .bool, default: "false", doc: "deleted when its last binding goes"),
            OptionField("internal", .bool, default: "false", doc: "only other exchanges may publish to it"),
            OptionField("arguments", .map(.any), doc: "exchange arguments (alternate-exchange, ...)"),
        ])

    static let queueSchema = ObjectSchema(
        doc: "How to declare the consumed queue.",
        [
            OptionField("durable", .bool, default: "true", doc: "survives a broker restart"),
            OptionField("exclusive", .bool, default: "false", doc: "used only by this connection, deleted when it closes"),
            OptionField("autoDelete", .bool, default: "false", doc: "deleted when its last consumer goes"),
            OptionField(
                "arguments", .map(.any),
                doc:
                    "queue arguments: x-queue-type (classic, quorum, stream), x-dead-letter-exchange, x-dead-letter-routing-key, x-max-length, x-message-ttl, ..."
            ),
        ])

    static let bindingSchema = ObjectSchema(
        doc: "A binding of the consumed queue to an exchange.",
        [
            OptionField("exchange", .string, required: true, doc: "exchange to bind to"),
            OptionField("routingKey", .string, default: "", doc: "binding key (topic patterns such as orders.* for topic exchanges)"),
            OptionField("arguments", .map(.any), doc: "binding arguments (headers exchanges: x-match and the header values)"),
        ])

    static let declareSchema = ObjectSchema(
        doc: "Topology declared on every (re)connect before consuming.",
        [
            OptionField("queue", .object(queueSchema), doc: "declare the queue with these settings; absent: the queue must exist"),
            OptionField("exchanges", .list(.object(exchangeSchema)), doc: "exchanges to declare"),
            OptionField("bindings", .list(.object(bindingSchema)), doc: "bindings of the queue"),
        ])

    static let targetDeclareSchema = ObjectSchema(
        doc: "Topology declared on every (re)connect before publishing.",
        [
            OptionField("exchanges", .list(.object(exchangeSchema)), doc: "exchanges to declare")
        ])

    /// Checks the connection options; issues carry the option's path.
    static func validateConnection(_ options: OptionValues) -> [ConfigIssue] {
        var issues: [ConfigIssue] = []
        guard let text = options.string("url") else { return issues }
        switch AMQPURL.parse(text) {
        case .failure(let error):
            issues.append(options.issue("url", error.message))
        case .success(let url):
            if let tls = options.object("tls"), !url.tls, !tls.explicit.isEmpty {
                issues.append(options.issue("tls", "TLS settings need an amqps:// URL"))
            }
        }
        if let tls = options.object("tls") {
            if tls.has("cert") != tls.has("key") {
                issues.append(tls.issue(tls.has("cert") ? "key" : "cert", "tls.cert and tls.key go together"))
            }
        }
        if let heartbeat = options.duration("heartbeat"), heartbeat < .zero || heartbeat > .seconds(65535) {
            issues.append(options.issue("heartbeat", "must be between 0 and 65535s"))
        }
        for (name, path) in arguments(options) {
            issues.append(contentsOf: validateArguments(name, path))
        }
        return issues
    }

    /// Every `arguments` map in the options (for checking that values are scalars).
    static func arguments(_ options: OptionValues) -> [(OptionValues, String)] {
        var found: [(OptionValues, String)] = []
        guard let declare = options.object("declare") else { return found }
        if let queue = declare.object("queue") { found.append((queue, "arguments")) }
        for case .object(let exchange) in declare.list("exchanges") ?? [] { found.append((exchange, "arguments")) }
        for case .object(let binding) in declare.list("bindings") ?? [] { found.append((binding, "arguments")) }
        return found
    }

    static func validateArguments(_ options: OptionValues, _ name: String) -> [ConfigIssue] {
        var issues: [ConfigIssue] = []
        for (key, value) in options.map(name) ?? [] {
            if case .node(let node) = value, node.scalarText == nil {
                issues.append(
                    ConfigIssue(
                        path: "\(options.path(of: name)).\(key)", line: node.line,
                        message: "an argument value must be a string, number or boolean"))
            }
        }
        return issues
    }

    /// Reads an `arguments` map: unquoted integers become numbers, true/false booleans,
    /// everything else text.
    static func fieldTable(_ options: OptionValues, _ name: String) -> [(String, AMQPFieldValue)] {
        (options.map(name) ?? []).compactMap { key, value in
            guard case .node(let node) = value, case .scalar(let scalar) = node.content else { return nil }
            if !scalar.quoted || scalar.interpolated {
                if let number = Int64(scalar.text) { return (key, .int(number)) }
                if scalar.text == "true" { return (key, .bool(true)) }
                if scalar.text == "false" { return (key, .bool(false)) }
            }
            return (key, .string(Array(scalar.text.utf8)))
        }
    }

    /// The target's `properties` fields and the AMQP property each one sets.
    static let propertyFields: [(String, Int32)] = [
        ("contentType", AMQP_BASIC_CONTENT_TYPE_FLAG), ("contentEncoding", AMQP_BASIC_CONTENT_ENCODING_FLAG),
        ("messageId", AMQP_BASIC_MESSAGE_ID_FLAG), ("correlationId", AMQP_BASIC_CORRELATION_ID_FLAG),
        ("type", AMQP_BASIC_TYPE_FLAG), ("appId", AMQP_BASIC_APP_ID_FLAG),
        ("replyTo", AMQP_BASIC_REPLY_TO_FLAG), ("expiration", AMQP_BASIC_EXPIRATION_FLAG),
    ]

    static func connectionSettings(_ options: OptionValues, name: String) throws -> AMQPConnectionSettings {
        let url: AMQPURL
        switch AMQPURL.parse(options.string("url") ?? "") {
        case .success(let parsed): url = parsed
        case .failure(let error): throw ConnectorError.targetDown("\(options.path(of: "url")): \(error.message)")
        }
        var tls = AMQPTLS()
        if let object = options.object("tls") {
            tls.ca = object.string("ca")
            tls.cert = object.string("cert")
            tls.key = object.string("key")
            tls.verify = object.bool("verify") ?? true
        }
        let heartbeat = Int((options.duration("heartbeat") ?? .seconds(30)).components.seconds)
        return AMQPConnectionSettings(url: url, tls: tls, heartbeat: heartbeat, name: name)
    }

    struct Exchange: Sendable {
        var name: String
        var type: String
        var durable: Bool
        var autoDelete: Bool
        var `internal`: Bool
        var arguments: [(String, AMQPFieldValue)]
    }

    static func exchanges(_ declare: OptionValues?) -> [Exchange] {
        guard let declare else { return [] }
        return (declare.list("exchanges") ?? []).compactMap { value in
            guard case .object(let object) = value else { return nil }
            return Exchange(
                name: object.string("name") ?? "", type: object.string("type") ?? "direct",
                durable: object.bool("durable") ?? true, autoDelete: object.bool("autoDelete") ?? false,
                internal: object.bool("internal") ?? false, arguments: fieldTable(object, "arguments"))
        }
    }

    static func declare(_ exchanges: [Exchange], on connection: AMQPConnection) throws(AMQPError) {
        for exchange in exchanges {
            try connection.declareExchange(
                exchange.name, type: exchange.type, durable: exchange.durable, autoDelete: exchange.autoDelete, internal: exchange.internal,
                arguments: exchange.arguments)
        }
    }
}

/// Backoff between reconnection attempts: exponential from 100 ms, capped at 10 s, full jitter.
struct ReconnectBackoff {
    var attempt = 0

    mutating func next() -> Duration {
        let ceiling = min(10_000.0, 100.0 * Double(1 << min(attempt, 10)))
        attempt += 1
        return .milliseconds(Int.random(in: Int(ceiling / 2)...Int(ceiling)))
    }

    mutating func reset() { attempt = 0 }
}
