#if canImport(Glibc)
    import Glibc
#endif
import CRabbitMQ
import Logging
import Synchronization
import SwitchyardCore

/// The `rabbitmq` target: publishes with publisher confirms, pipelined.
///
/// Every message of a batch is published before any confirm is awaited, and a lane publishes
/// its next batches (up to `inFlight`) while earlier ones await theirs; confirms
/// (`basic.ack` / `basic.nack`, possibly `multiple`) are matched to messages by their publish
/// sequence number. With `mandatory`, an unroutable message comes back as `basic.return`
/// (matched by the sequence number stamped in the `switchyard-publish-seq` header) and is a
/// permanent failure of that message, which the core sends to the dead-letter target.
final class RabbitMQTarget: Target {
    /// AMQP header carrying the publish sequence number when `mandatory` is on, so that a
    /// `basic.return` can be matched to its message. The source strips it.
    static let sequenceHeader = "switchyard-publish-seq"

    static let propertySchema = ObjectSchema(
        doc: "AMQP message properties, as templates.",
        [
            OptionField("contentType", .template, doc: "content-type"),
            OptionField("contentEncoding", .template, doc: "content-encoding"),
            OptionField("messageId", .template, doc: "message-id"),
            OptionField("correlationId", .template, doc: "correlation-id"),
            OptionField("type", .template, doc: "type"),
            OptionField("appId", .template, doc: "app-id"),
            OptionField("replyTo", .template, doc: "reply-to"),
            OptionField("expiration", .template, doc: "expiration (per-message TTL in milliseconds, as text)"),
        ])

    static let kind = TargetKind(
        kind: "rabbitmq",
        summary:
            "publishes to a RabbitMQ exchange (AMQP 0-9-1, rabbitmq-c) with publisher confirms; mandatory unroutable messages are dead-lettered",
        options: ObjectSchema(
            doc: "Publishes to a RabbitMQ exchange.",
            RabbitMQOptions.connectionFields + [
                OptionField(
                    "exchange", .string, default: "", doc: "exchange to publish to; empty: the default exchange (routing key = queue name)"),
                OptionField("routingKey", .template, default: "{{ channel }}", doc: "routing key template"),
                OptionField("persistent", .bool, default: "true", doc: "delivery mode 2 (persistent)"),
                OptionField(
                    "mandatory", .bool, default: "false",
                    doc:
                        "an unroutable message is returned by the broker and becomes a permanent error of that message (dead-letter target)"
                ),
                OptionField("headers", .map(.template), doc: "AMQP headers to set, as templates"),
                OptionField("properties", .object(propertySchema), doc: "AMQP properties, as templates"),
                OptionField("value", .template, doc: "body template (reshape the message); absent: the message's value"),
                OptionField(
                    "keyHeader", .string, default: RabbitMQOptions.defaultKeyHeader,
                    doc:
                        "AMQP header that carries the message key (a rabbitmq source turns it back into the key); empty: the key is not sent"
                ),
                OptionField(
                    "forwardHeaders", .bool, default: "true",
                    doc: "copy message headers into AMQP headers, and amqp-* headers (from a rabbitmq source) back into properties"),
                OptionField(
                    "confirmTimeout", .duration, default: "30s",
                    doc: "how long to wait for the broker's confirms of a batch before the batch is retried"),
                OptionField("declare", .object(RabbitMQOptions.targetDeclareSchema), doc: "exchanges to declare on every (re)connect"),
            ]),
        validate: { options in
            var issues = RabbitMQOptions.validateConnection(options)
            if let timeout = options.duration("confirmTimeout"), timeout <= .zero {
                issues.append(options.issue("confirmTimeout", "must be greater than 0"))
            }
            return issues
        },
        batchesInFlight: 4,
        make: { setup in try RabbitMQTarget(setup) }
    )

    /// One message ready to publish (templates rendered off the I/O queue).
    struct Outgoing: Sendable {
        var routingKey: [UInt8]
        var body: [UInt8]
        /// (property flag, value) for the byte-string properties.
        var properties: [(Int32, [UInt8])]
        var priority: UInt8?
        var timestamp: UInt64?
        var headers: [(String, AMQPFieldValue)]
    }

    let name: String
    let logger: Logger
    let exchange: String
    let routingKey: Template
    let persistent: Bool
    let mandatory: Bool
    let headerTemplates: [(String, Template)]
    let propertyTemplates: [(Int32, Template)]
    let forwardHeaders: Bool
    let value: Template?
    let keyHeader: String
    let io: BlockingQueue
    let publisher: Publisher
    let healthState = Mutex<ConnectorHealth>(.connecting)

    init(_ setup: ConnectorSetup) throws {
        let options = setup.options
        name = setup.name
        logger = setup.logger
        exchange = options.string("exchange") ?? ""
        routingKey = try options.template("routingKey") ?? Template("{{ channel }}")
        persistent = options.bool("persistent") ?? true
        mandatory = options.bool("mandatory") ?? false
        forwardHeaders = options.bool("forwardHeaders") ?? true
        value = options.template("value")
        keyHeader = options.string("keyHeader") ?? RabbitMQOptions.defaultKeyHeader
        headerTemplates = (options.map("headers") ?? []).compactMap { entry in
            if case .template(let template) = entry.value { return (entry.key, template) }
            return nil
        }
        var properties: [(Int32, Template)] = []
        if let object = options.object("properties") {
            for (field, flag) in RabbitMQOptions.propertyFields {
                if let template = object.template(field) { properties.append((flag, template)) }
            }
        }
        propertyTemplates = properties
        io = BlockingQueue(label: "switchyard.rabbitmq.\(setup.name)")
        let timeout = options.duration("confirmTimeout") ?? .seconds(30)
        publisher = Publisher(
            settings: try RabbitMQOptions.connectionSettings(options, name: setup.name),
            exchanges: RabbitMQOptions.exchanges(options.object("declare")),
            exchange: exchange, mandatory: mandatory, persistent: persistent, confirmTimeout: timeout)
        publisher.queue = io
    }

    var health: ConnectorHealth { healthState.withLock { $0 } }

    func open() async throws {
        let publisher = self.publisher
        do {
            try await io.run { () throws -> Void in try publisher.connect() }
            report(nil)
        } catch {
            report(error)
            throw error
        }
    }

    func write(_ messages: [Message]) async throws -> WriteResult {
        try await start(messages).result()
    }

    /// Publishes the batch (on `io`) and returns what waits for its confirms, so that the lane
    /// can publish its next batch meanwhile: one channel keeps the order of what is published.
    func start(_ messages: [Message]) async throws -> PendingWrite {
        // A message that AMQP cannot carry fails alone (dead-lettered); the rest are published.
        var outgoing: [Outgoing] = []
        var indices: [Int] = []
        var refused: [(index: Int, error: ConnectorError)] = []
        outgoing.reserveCapacity(messages.count)
        for (index, message) in messages.enumerated() {
            switch render(message) {
            case .success(let rendered):
                outgoing.append(rendered)
                indices.append(index)
            case .failure(let error):
                refused.append((index, error))
            }
        }
        if outgoing.isEmpty { return .finished(WriteResult(failures: refused)) }
        let publisher = self.publisher
        let confirms = Completion<WriteResult>()
        do {
            try await io.run { [outgoing] () throws -> Void in try publisher.publish(outgoing, confirms: confirms) }
        } catch {
            report(error)
            throw error
        }
        return PendingWrite { [self, indices, refused] in
            let published: WriteResult
            do {
                published = try await confirms.wait()
                report(nil)
            } catch {
                report(error)
                throw error
            }
            if refused.isEmpty { return published }
            let failures = refused + published.failures.map { (index: indices[$0.index], error: $0.error) }
            return WriteResult(failures: failures.sorted { $0.index < $1.index })
        }
    }

    func close() async {
        let publisher = self.publisher
        await io.run { publisher.disconnect() }
        healthState.withLock { $0 = .down("closed") }
    }

    func report(_ error: (any Error)?) {
        let health: ConnectorHealth
        if let error = error as? ConnectorError {
            health = error.kind == .targetDown ? .down(error.message) : .connecting
        } else {
            health = error == nil ? .up : .connecting
        }
        let changed = healthState.withLock { state -> Bool in
            defer { state = health }
            return state != health
        }
        if changed, let error {
            logger.warning("rabbitmq target connection problem", metadata: ["target": "\(name)", "error": "\(error)"])
        }
    }

    /// Property headers of a `rabbitmq` source that map back to AMQP properties.
    static let forwardedProperties: [(String, Int32)] = [
        (RabbitMQSource.HeaderName.contentType, AMQP_BASIC_CONTENT_TYPE_FLAG),
        (RabbitMQSource.HeaderName.contentEncoding, AMQP_BASIC_CONTENT_ENCODING_FLAG),
        (RabbitMQSource.HeaderName.correlationID, AMQP_BASIC_CORRELATION_ID_FLAG),
        (RabbitMQSource.HeaderName.replyTo, AMQP_BASIC_REPLY_TO_FLAG),
        (RabbitMQSource.HeaderName.expiration, AMQP_BASIC_EXPIRATION_FLAG),
        (RabbitMQSource.HeaderName.messageID, AMQP_BASIC_MESSAGE_ID_FLAG),
        (RabbitMQSource.HeaderName.type, AMQP_BASIC_TYPE_FLAG),
        (RabbitMQSource.HeaderName.appID, AMQP_BASIC_APP_ID_FLAG),
    ]

    /// Headers of a `rabbitmq` source that describe the delivery, not the message: not forwarded.
    static let droppedHeaders: Set<String> = [
        RabbitMQSource.HeaderName.deliveryMode, RabbitMQSource.HeaderName.exchange,
        RabbitMQSource.HeaderName.redelivered, RabbitMQSource.HeaderName.userID,
        RabbitMQSource.HeaderName.timestamp, RabbitMQSource.HeaderName.priority, sequenceHeader,
    ]

    /// AMQP short strings (property values, table field names, the routing key) hold at most 255 bytes.
    static let shortStringLimit = 255

    /// The message as it will be published, or why AMQP cannot carry it. A forwarded property
    /// header that does not fit a property, or repeats one, travels as a table header instead.
    func render(_ message: Message) -> Result<Outgoing, ConnectorError> {
        var properties: [(Int32, [UInt8])] = []
        var headers: [(String, AMQPFieldValue)] = []
        var priority: UInt8?
        for (flag, template) in propertyTemplates {
            let value = template.render(message)
            if value.count > Self.shortStringLimit {
                let field = RabbitMQOptions.propertyFields.first { $0.1 == flag }?.0 ?? "a property"
                return .failure(.permanent("properties.\(field) renders \(value.count) bytes (AMQP allows \(Self.shortStringLimit))"))
            }
            if !value.isEmpty { properties.append((flag, value)) }
        }
        if forwardHeaders {
            for header in message.headers {
                if let mapped = Self.forwardedProperties.first(where: { $0.0 == header.name }),
                    header.value.count <= Self.shortStringLimit, !properties.contains(where: { $0.0 == mapped.1 })
                {
                    properties.append((mapped.1, header.value))
                } else if header.name == RabbitMQSource.HeaderName.priority {
                    priority = priority ?? UInt8(String(decoding: header.value, as: UTF8.self))
                } else if !Self.droppedHeaders.contains(header.name) {
                    headers.append((header.name, .string(header.value)))
                }
            }
        }
        if let key = message.key, !keyHeader.isEmpty {
            headers.removeAll { $0.0 == keyHeader }
            headers.append((keyHeader, .string(key)))
        }
        for (name, template) in headerTemplates {
            headers.removeAll { $0.0 == name }
            headers.append((name, .string(template.render(message))))
        }
        if let long = headers.first(where: { $0.0.utf8.count > Self.shortStringLimit }) {
            return .failure(
                .permanent("a header name of \(long.0.utf8.count) bytes (AMQP allows \(Self.shortStringLimit)): '\(long.0.prefix(40))...'"))
        }
        let routing = routingKey.render(message)
        if routing.count > Self.shortStringLimit {
            return .failure(
                .permanent(
                    "the routing key template '\(routingKey.source)' renders \(routing.count) bytes (AMQP allows \(Self.shortStringLimit))")
            )
        }
        let timestamp: UInt64? = message.timestamp > 0 ? UInt64(message.timestamp / 1000) : nil
        return .success(
            Outgoing(
                routingKey: routing, body: value.map { $0.render(message) } ?? message.value, properties: properties,
                priority: priority, timestamp: timestamp, headers: headers))
    }
}

/// The target's connection and confirm bookkeeping; used only on the target's serial queue.
final class Publisher: @unchecked Sendable {
    let settings: AMQPConnectionSettings
    let exchanges: [RabbitMQOptions.Exchange]
    let exchange: String
    let mandatory: Bool
    let persistent: Bool
    let confirmTimeout: Duration
    var connection: AMQPConnection?
    /// The publish sequence number the next message gets (1 after confirm.select).
    var nextSequence: UInt64 = 1
    var lastActivity = ContinuousClock.now
    /// Published batches awaiting their confirms, in publish order.
    var awaiting: [Awaiting] = []
    /// Whether a turn of reading confirms is scheduled on `queue`.
    var pumping = false
    /// The target's serial queue, where every use of this publisher runs.
    var queue: BlockingQueue?

    struct Awaiting {
        let first: UInt64
        let count: Int
        var outcomes: [Outcome]
        /// Unroutable messages (`mandatory`) by position, with the broker's reason.
        var returned: [Int: String] = [:]
        var remaining: Int
        let deadline: ContinuousClock.Instant
        let confirms: Completion<WriteResult>

        init(first: UInt64, count: Int, deadline: ContinuousClock.Instant, confirms: Completion<WriteResult>) {
            self.first = first
            self.count = count
            outcomes = Array(repeating: .pending, count: count)
            remaining = count
            self.deadline = deadline
            self.confirms = confirms
        }
    }

    init(
        settings: AMQPConnectionSettings, exchanges: [RabbitMQOptions.Exchange], exchange: String, mandatory: Bool, persistent: Bool,
        confirmTimeout: Duration
    ) {
        self.settings = settings
        self.persistent = persistent
        self.exchanges = exchanges
        self.exchange = exchange
        self.mandatory = mandatory
        self.confirmTimeout = confirmTimeout
    }

    /// Connects, declares, turns confirms on. Throws ``ConnectorError``.
    func connect() throws {
        if connection != nil { return }
        do {
            let opened = try AMQPConnection(settings)
            try RabbitMQOptions.declare(exchanges, on: opened)
            try opened.confirmSelect()
            connection = opened
            nextSequence = 1
            lastActivity = .now
        } catch {
            throw error.connectorError
        }
    }

    func disconnect() {
        connection?.close()
        connection = nil
        failAwaiting(.retriable("the rabbitmq target closed before the broker confirmed"))
    }

    func fail(_ error: AMQPError) -> ConnectorError {
        connection?.destroy()
        connection = nil
        return error.connectorError
    }

    enum Outcome {
        case pending
        case acked
        case nacked
    }

    /// Publishes `batch` and registers it to await its confirms, which resolve `confirms`.
    /// Throws (``ConnectorError``) when it could not be published; then every batch still
    /// awaiting confirms on the connection fails too.
    func publish(_ batch: [RabbitMQTarget.Outgoing], confirms: Completion<WriteResult>) throws {
        if let connection, awaiting.isEmpty, ContinuousClock.now - lastActivity > .seconds(max(1, settings.heartbeat)) {
            // Idle longer than a heartbeat: the broker may have closed the connection; read
            // what it sent before publishing into a dead socket.
            do {
                while let frame = try connection.waitFrame(timeout: .microseconds(1)) { try connection.handleUnexpected(frame) }
            } catch {
                connection.destroy()
                self.connection = nil
            }
        }
        try connect()
        guard let connection else { throw ConnectorError.retriable("not connected") }
        lastActivity = .now
        let first = nextSequence
        let exchangeBytes = Array(exchange.utf8)
        for message in batch {
            var arena = CArena()
            defer { arena.free() }
            var properties = Self.properties(message, persistent: persistent, sequence: mandatory ? nextSequence : nil, arena: &arena)
            let exchangeField = arena.bytes(exchangeBytes)
            let keyField = arena.bytes(message.routingKey)
            let status = message.body.withUnsafeBytes { body in
                amqp_basic_publish(
                    connection.state, 1, exchangeField, keyField, mandatory ? 1 : 0, 0, &properties,
                    amqp_bytes_t(len: body.count, bytes: UnsafeMutableRawPointer(mutating: body.baseAddress)))
            }
            if status != 0 {
                throw failAll(.library(status, "publish to exchange '\(exchange)' failed"))
            }
            nextSequence += 1
        }
        awaiting.append(Awaiting(first: first, count: batch.count, deadline: .now + confirmTimeout, confirms: confirms))
        readConfirms(waitingAtMost: .zero)
        schedulePump()
    }

    /// While batches await confirms, reads them on the target's queue in short turns, so that
    /// publishes queued meanwhile run in between.
    func schedulePump() {
        guard !pumping, !awaiting.isEmpty, let queue else { return }
        pumping = true
        queue.schedule { [self] in
            pumping = false
            readConfirms(waitingAtMost: .milliseconds(2))
            schedulePump()
        }
    }

    /// Reads the frames that arrive within `limit` (and then what is already there), settles
    /// the confirms and returns they carry, and resolves the batches that are complete. A
    /// broken connection or a batch past its confirm timeout fails every awaiting batch.
    func readConfirms(waitingAtMost limit: Duration) {
        guard let connection, !awaiting.isEmpty else { return }
        do {
            var wait = limit
            while !awaiting.isEmpty, let frame = try connection.waitFrame(timeout: max(wait, .microseconds(1))) {
                wait = .zero
                try handle(frame, on: connection)
                resolveComplete()
            }
            // Every frame read is handled: the memory rabbitmq-c decoded them into goes back to
            // its pools (it keeps it until asked, and confirms arrive all the time).
            amqp_maybe_release_buffers(connection.state)
            if let late = awaiting.first, ContinuousClock.now > late.deadline {
                let remaining = late.outcomes.filter { $0 == .pending }.count
                throw AMQPError(
                    kind: .library, code: 0,
                    message: "no publisher confirm within \(confirmTimeout) for \(remaining) of \(late.count) messages")
            }
        } catch let error as AMQPError {
            _ = failAll(error)
        } catch {
            _ = failAll(AMQPError(kind: .library, code: 0, message: "\(error)"))
        }
    }

    func handle(_ frame: amqp_frame_t, on connection: AMQPConnection) throws {
        guard frame.frame_type == UInt8(AMQP_FRAME_METHOD) else { return }
        let method = frame.payload.method
        switch method.id {
        case amqp_method_number_t(SWITCHYARD_AMQP_BASIC_ACK):
            let ack = method.decoded.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee
            settle(ack.delivery_tag, multiple: ack.multiple != 0, as: .acked)
        case amqp_method_number_t(SWITCHYARD_AMQP_BASIC_NACK):
            let nack = method.decoded.assumingMemoryBound(to: amqp_basic_nack_t.self).pointee
            settle(nack.delivery_tag, multiple: nack.multiple != 0, as: .nacked)
        case amqp_method_number_t(SWITCHYARD_AMQP_BASIC_RETURN):
            let info = method.decoded.assumingMemoryBound(to: amqp_basic_return_t.self).pointee
            let reason =
                "unroutable: \(info.reply_code) \(info.reply_text.string) (exchange '\(info.exchange.string)', routing key '\(info.routing_key.string)')"
            var content = try connection.readContent(channel: frame.channel)
            defer { amqp_destroy_message(&content) }
            let headers = decodeTable(content.properties.headers)
            if let value = headers.first(where: { $0.0 == RabbitMQTarget.sequenceHeader })?.1,
                let sequence = UInt64(String(decoding: value, as: UTF8.self)),
                let index = awaiting.firstIndex(where: { sequence >= $0.first && sequence < $0.first + UInt64($0.count) })
            {
                awaiting[index].returned[Int(sequence - awaiting[index].first)] = reason
            }
        default:
            try connection.handleUnexpected(frame)
        }
    }

    /// Marks the messages a confirm covers: `tag` alone, or every tag up to it with `multiple`.
    func settle(_ tag: UInt64, multiple: Bool, as outcome: Outcome) {
        for index in awaiting.indices {
            let first = awaiting[index].first
            let low = multiple ? first : max(first, tag)
            let high = min(tag, first + UInt64(awaiting[index].count) - 1)
            guard high >= low else { continue }
            for sequence in low...high {
                let position = Int(sequence - first)
                if awaiting[index].outcomes[position] == .pending {
                    awaiting[index].outcomes[position] = outcome
                    awaiting[index].remaining -= 1
                }
            }
        }
    }

    /// Resolves the batches whose every message is confirmed.
    func resolveComplete() {
        guard awaiting.contains(where: { $0.remaining == 0 }) else { return }
        lastActivity = .now
        for batch in awaiting where batch.remaining == 0 {
            var failures: [(index: Int, error: ConnectorError)] = []
            for index in 0..<batch.count {
                if let reason = batch.returned[index] {
                    failures.append((index, .permanent(reason)))
                } else if batch.outcomes[index] == .nacked {
                    failures.append((index, .retriable("the broker refused the message (basic.nack)")))
                }
            }
            batch.confirms.resolve(.success(WriteResult(failures: failures)))
        }
        awaiting.removeAll { $0.remaining == 0 }
    }

    /// Drops the connection and fails every batch awaiting confirms with `error`; returns it.
    func failAll(_ error: AMQPError) -> ConnectorError {
        let failure = fail(error)
        failAwaiting(failure)
        return failure
    }

    func failAwaiting(_ error: ConnectorError) {
        let failed = awaiting
        awaiting = []
        for batch in failed { batch.confirms.resolve(.failure(error)) }
    }

    /// The AMQP basic properties of one outgoing message, their memory in `arena`; `sequence`
    /// (with `mandatory`) goes into the sequence header that matches returns to messages.
    static func properties(_ message: RabbitMQTarget.Outgoing, persistent: Bool, sequence: UInt64?, arena: inout CArena)
        -> amqp_basic_properties_t
    {
        var properties = amqp_basic_properties_t()
        var flags: Int32 = AMQP_BASIC_DELIVERY_MODE_FLAG
        properties.delivery_mode = persistent ? 2 : 1
        for (flag, value) in message.properties {
            flags |= flag
            let bytes = arena.bytes(value)
            switch flag {
            case AMQP_BASIC_CONTENT_TYPE_FLAG: properties.content_type = bytes
            case AMQP_BASIC_CONTENT_ENCODING_FLAG: properties.content_encoding = bytes
            case AMQP_BASIC_MESSAGE_ID_FLAG: properties.message_id = bytes
            case AMQP_BASIC_CORRELATION_ID_FLAG: properties.correlation_id = bytes
            case AMQP_BASIC_TYPE_FLAG: properties.type = bytes
            case AMQP_BASIC_APP_ID_FLAG: properties.app_id = bytes
            case AMQP_BASIC_REPLY_TO_FLAG: properties.reply_to = bytes
            case AMQP_BASIC_EXPIRATION_FLAG: properties.expiration = bytes
            default: break
            }
        }
        if let priority = message.priority {
            flags |= AMQP_BASIC_PRIORITY_FLAG
            properties.priority = priority
        }
        if let timestamp = message.timestamp {
            flags |= AMQP_BASIC_TIMESTAMP_FLAG
            properties.timestamp = timestamp
        }
        var headers = message.headers
        if let sequence { headers.append((RabbitMQTarget.sequenceHeader, .int(Int64(sequence)))) }
        if !headers.isEmpty {
            flags |= AMQP_BASIC_HEADERS_FLAG
            properties.headers = arena.table(headers)
        }
        properties._flags = amqp_flags_t(flags)
        return properties
    }
}
