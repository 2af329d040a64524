#if canImport(Glibc)
    import Glibc
#endif
import CRabbitMQ
import Dispatch
import Logging
import Metrics
import Synchronization
import SwitchyardCore

/// The `rabbitmq` source: consumes one queue with manual acknowledgements.
///
/// One I/O thread owns the rabbitmq-c connection: it consumes, hands deliveries to `run`
/// through a ``DeliveryMailbox``, and sends `basic.ack` (with `multiple`) for the prefix the
/// core's ledger releases. Each connection is a new *generation*; the batch shard is the
/// generation, so a ledger never mixes delivery tags of two connections, and acknowledgements
/// for a lost generation are dropped (the broker redelivers those messages).
final class RabbitMQSource: Source {
    static let kind = SourceKind(
        kind: "rabbitmq",
        summary: "consumes a RabbitMQ queue (AMQP 0-9-1, rabbitmq-c) with prefetch, manual acknowledgements and reconnects",
        options: ObjectSchema(
            doc: "Consumes a RabbitMQ queue.",
            RabbitMQOptions.connectionFields + [
                OptionField("queue", .string, required: true, doc: "queue to consume"),
                OptionField(
                    "prefetch", .int(min: 1, max: 65535), default: "500",
                    doc:
                        "basic.qos prefetch count: unacknowledged deliveries the broker may push; capped so that prefetch × messageSizeEstimate fits in a quarter of delivery.memoryLimit"
                ),
                OptionField(
                    "messageSizeEstimate", .size, default: "64KiB",
                    doc: "the size a delivery is assumed to have when capping prefetch by the byte budget"),
                OptionField("consumerTag", .string, doc: "consumer tag; absent: the broker makes one"),
                OptionField(
                    "keyHeader", .string, default: RabbitMQOptions.defaultKeyHeader,
                    doc:
                        "AMQP header whose value becomes the message key (and is removed from the headers), as a rabbitmq target writes it; empty: messages have no key"
                ),
                OptionField(
                    "declare", .object(RabbitMQOptions.declareSchema), doc: "exchanges, queue and bindings to declare on every (re)connect"),
                OptionField(
                    "fencing", .choice(Fencing.allCases.map(\.rawValue)), default: Fencing.none.rawValue,
                    doc:
                        "keep a second process from consuming the queue at the same time: exclusive (an exclusive consumer; the broker refuses every other consumer while it lives, and a refused source stands by and tries again every standbyInterval), singleActiveConsumer (declares the queue with x-single-active-consumer: the broker delivers to one consumer and fails over to the next when it goes; needs declare.queue), none"
                ),
                OptionField(
                    "standbyInterval", .duration, default: "2s",
                    doc: "with fencing: exclusive, how often a standby source asks for the queue again"),
                OptionField(
                    "quietPeriod", .duration, default: "5s",
                    doc:
                        "in a bounded run (switchyard run --stop-at end), how long the queue must stay empty, with nothing delivered, before the source stops"
                ),
            ]),
        validate: { options in
            var issues = RabbitMQOptions.validateConnection(options)
            if options.string("queue")?.isEmpty == true {
                issues.append(options.issue("queue", "must not be empty"))
            }
            if let estimate = options.size("messageSizeEstimate"), estimate < 1 {
                issues.append(options.issue("messageSizeEstimate", "must be at least 1 byte"))
            }
            if options.string("fencing") == Fencing.singleActiveConsumer.rawValue {
                if let queue = options.object("declare")?.object("queue") {
                    let argument = RabbitMQOptions.fieldTable(queue, "arguments").first { $0.0 == Fencing.singleActiveArgument }
                    if let argument, argument.1 != .bool(true) {
                        issues.append(
                            options.issue(
                                "fencing",
                                "singleActiveConsumer contradicts declare.queue.arguments.\(Fencing.singleActiveArgument), which is not true"
                            ))
                    }
                } else {
                    issues.append(
                        options.issue(
                            "fencing",
                            "singleActiveConsumer needs declare.queue: the broker takes x-single-active-consumer only when the queue is created (for a queue that exists, use fencing: exclusive)"
                        ))
                }
            }
            return issues
        },
        positions: .perSession,
        reportsLag: true,
        stopsAtEnd: true,
        make: { setup in try RabbitMQSource(setup) }
    )

    /// How a source keeps other processes from consuming its queue at the same time.
    enum Fencing: String, Sendable, CaseIterable {
        case none
        case exclusive
        case singleActiveConsumer
        static let singleActiveArgument = "x-single-active-consumer"
    }

    struct Binding: Sendable {
        var exchange: String
        var routingKey: String
        var arguments: [(String, AMQPFieldValue)]
    }

    struct QueueDeclaration: Sendable {
        var durable: Bool
        var exclusive: Bool
        var autoDelete: Bool
        var arguments: [(String, AMQPFieldValue)]
    }

    /// Shared between the I/O thread, `run`, `acknowledge` and `close`.
    struct Shared {
        var health: ConnectorHealth = .connecting
        /// The generation whose delivery tags may be acknowledged; nil while disconnected.
        var liveGeneration: Int32?
        /// The highest delivery tag the ledger released for the live generation.
        var releasedThrough: UInt64 = 0
        /// The highest delivery tag acknowledged to the broker.
        var ackedThrough: UInt64 = 0
        var stopFetching = false
        var closing = false
        var started = false
        var finished = false
        var closeWaiter: CheckedContinuation<Void, Never>?
        var staleAcks = 0
        var lastError: String?
        var generation: Int32 = 0
        /// With exclusive fencing: another consumer holds the queue, and this source waits.
        var standby = false
    }

    let name: String
    let queue: String
    let prefetch: Int
    let consumerTag: String
    let settings: AMQPConnectionSettings
    let queueDeclaration: QueueDeclaration?
    let exchanges: [RabbitMQOptions.Exchange]
    let bindings: [Binding]
    let logger: Logger
    let batchLimit: Int
    let keyHeader: String
    let fencing: Fencing
    let standbyInterval: Duration
    /// A bounded run: stop once the queue stayed empty this long (nil: unbounded).
    let quietPeriod: Duration?
    /// Deliveries received so far (the bounded run's quiet check).
    let delivered = Atomic<Int>(0)
    /// The queue's ready messages at the last check (connect, then every 5 s).
    let readyMessages = Atomic<Int>(0)
    let mailbox = DeliveryMailbox()
    let wake = WakePipe()
    let shared = Mutex(Shared())

    let deliveries: Counter
    let redeliveries: Counter
    let acks: Counter
    let reconnects: Counter
    let staleAcks: Counter
    let depth: Gauge
    let connectionUp: Gauge

    init(_ setup: ConnectorSetup) throws {
        let options = setup.options
        name = setup.name
        logger = setup.logger
        queue = options.string("queue") ?? ""
        consumerTag = options.string("consumerTag") ?? ""
        keyHeader = options.string("keyHeader") ?? RabbitMQOptions.defaultKeyHeader
        settings = try RabbitMQOptions.connectionSettings(options, name: setup.name)
        let requested = options.int("prefetch") ?? 500
        let estimate = max(1, options.size("messageSizeEstimate") ?? 65536)
        prefetch = Self.effectivePrefetch(requested: requested, estimate: estimate, memoryLimit: setup.memoryLimit)
        if prefetch < requested {
            setup.logger.notice(
                "prefetch capped by the byte budget",
                metadata: [
                    "source": "\(setup.name)", "requested": "\(requested)", "prefetch": "\(prefetch)",
                    "messageSizeEstimate": "\(estimate)", "memoryLimit": "\(setup.memoryLimit)",
                ])
        }
        batchLimit = min(prefetch, 1000)
        let fencing = Fencing(rawValue: options.string("fencing") ?? "") ?? .none
        self.fencing = fencing
        standbyInterval = options.duration("standbyInterval") ?? .seconds(2)
        quietPeriod = setup.stopAtEnd ? options.duration("quietPeriod") ?? .seconds(5) : nil
        let declare = options.object("declare")
        queueDeclaration = declare?.object("queue").map { queue in
            var arguments = RabbitMQOptions.fieldTable(queue, "arguments")
            if fencing == .singleActiveConsumer && !arguments.contains(where: { $0.0 == Fencing.singleActiveArgument }) {
                arguments.append((Fencing.singleActiveArgument, .bool(true)))
            }
            return QueueDeclaration(
                durable: queue.bool("durable") ?? true, exclusive: queue.bool("exclusive") ?? false,
                autoDelete: queue.bool("autoDelete") ?? false, arguments: arguments)
        }
        exchanges = RabbitMQOptions.exchanges(declare)
        bindings = (declare?.list("bindings") ?? []).compactMap { value in
            guard case .object(let binding) = value else { return nil }
            return Binding(
                exchange: binding.string("exchange") ?? "", routingKey: binding.string("routingKey") ?? "",
                arguments: RabbitMQOptions.fieldTable(binding, "arguments"))
        }
        let dimensions = [("source", setup.name)]
        deliveries = Counter(label: "switchyard_rabbitmq_deliveries_total", dimensions: dimensions)
        redeliveries = Counter(label: "switchyard_rabbitmq_redeliveries_total", dimensions: dimensions)
        acks = Counter(label: "switchyard_rabbitmq_acknowledged_total", dimensions: dimensions)
        reconnects = Counter(label: "switchyard_rabbitmq_reconnects_total", dimensions: dimensions)
        staleAcks = Counter(label: "switchyard_rabbitmq_stale_acknowledgements_dropped_total", dimensions: dimensions)
        depth = Gauge(label: "switchyard_rabbitmq_queue_messages", dimensions: dimensions + [("queue", queue)])
        connectionUp = Gauge(label: MetricNames.connectionUp, dimensions: [("connector", setup.name), ("kind", "rabbitmq")])
    }

    /// The prefetch actually used: the requested one, capped so that
    /// `prefetch × estimate ≤ memoryLimit / 4` (at least 1).
    static func effectivePrefetch(requested: Int, estimate: Int, memoryLimit: Int) -> Int {
        let cap = max(1, memoryLimit / 4 / max(1, estimate))
        return max(1, min(requested, cap, 65535))
    }

    var health: ConnectorHealth { shared.withLock { $0.health } }

    var backlog: Int? { readyMessages.load(ordering: .relaxed) }

    /// A standby (exclusive fencing, another consumer holds the queue) consumes nothing.
    var idle: Bool { shared.withLock { $0.standby } }

    /// The number of connections made so far (1 after the first connect, 2 after a reconnect).
    var connectionGeneration: Int32 { shared.withLock { $0.generation } }

    /// Messages whose acknowledgement arrived after their connection was lost (dropped).
    var droppedStaleAcknowledgements: Int { shared.withLock { $0.staleAcks } }

    func run(context: SourceContext) async throws {
        let start = shared.withLock { shared -> Bool in
            guard !shared.started else { return false }
            shared.started = true
            return true
        }
        if start {
            DispatchQueue(label: "switchyard.rabbitmq.\(name)").async { self.ioLoop(context) }
        }
        defer {
            shared.withLock { $0.stopFetching = true }
            wake.signal()
        }
        while !context.isStopping, let chunk = await mailbox.take(limit: batchLimit) {
            try await context.submit(Batch(shard: chunk.generation, messages: chunk.messages))
        }
    }

    func acknowledge(shard: Int32, through offset: Int64, count: Int) {
        let live = shared.withLock { shared -> Bool in
            guard shared.liveGeneration == shard else {
                shared.staleAcks += count
                return false
            }
            shared.releasedThrough = max(shared.releasedThrough, UInt64(offset))
            return true
        }
        if live {
            wake.signal()
        } else {
            staleAcks.increment(by: count)
        }
    }

    func close() async {
        mailbox.finish()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = shared.withLock { shared -> Bool in
                shared.closing = true
                if !shared.started || shared.finished { return true }
                shared.closeWaiter = continuation
                return false
            }
            wake.signal()
            if done { continuation.resume() }
        }
    }

    // MARK: the I/O thread

    /// Owns the connection: connects (with backoff), consumes, acknowledges; on close sends the
    /// last acknowledgements and closes the channel so unacknowledged messages go back.
    func ioLoop(_ context: SourceContext) {
        var backoff = ReconnectBackoff()
        var connection: AMQPConnection?
        var generation: Int32 = 0
        // The delivery tags of each connection start again at 1, in every process and after
        // every restart: a random session per connection keeps (session, partition, offset)
        // unique across replicas and restarts (see Message.session).
        var session: UInt64 = 0
        var pending: [Message] = []
        var lastDepthCheck = ContinuousClock.now
        var quiet = QuietWatch()
        while true {
            let (closing, stopFetching) = shared.withLock { ($0.closing, $0.stopFetching) }
            if closing { break }
            if context.isStopping || stopFetching { mailbox.finish() }
            guard let live = connection else {
                if context.isStopping || stopFetching {
                    sleep(.milliseconds(100))
                    continue
                }
                do {
                    let opened = try connect()
                    generation += 1
                    session = PositionSession.random()
                    connection = opened
                    backoff.reset()
                    if generation > 1 { reconnects.increment() }
                    shared.withLock {
                        $0.standby = false
                        $0.liveGeneration = generation
                        $0.generation = generation
                        $0.releasedThrough = 0
                        $0.ackedThrough = 0
                        $0.health = .up
                        $0.lastError = nil
                    }
                    connectionUp.record(1)
                    logger.info(
                        "rabbitmq source connected",
                        metadata: [
                            "source": "\(name)", "broker": "\(settings.url.redacted)", "queue": "\(queue)", "prefetch": "\(prefetch)",
                            "generation": "\(generation)",
                        ])
                } catch let error where fencing == .exclusive && error.refusesExclusiveUse {
                    let changed = shared.withLock { shared -> Bool in
                        defer {
                            shared.standby = true
                            shared.health = .up
                            shared.lastError = nil
                        }
                        return !shared.standby
                    }
                    connectionUp.record(1)
                    if changed {
                        logger.notice(
                            "rabbitmq source stands by: another consumer holds the queue exclusively",
                            metadata: ["source": "\(name)", "queue": "\(queue)", "retry": "\(standbyInterval)", "error": "\(error)"])
                    }
                    backoff.reset()
                    sleep(standbyInterval)
                } catch {
                    let message = "\(error)"
                    let changed = shared.withLock { shared -> Bool in
                        defer {
                            shared.lastError = message
                            shared.health = .down(message)
                        }
                        return shared.lastError != message
                    }
                    connectionUp.record(0)
                    if changed {
                        logger.error(
                            "rabbitmq source cannot connect; retrying with backoff", metadata: ["source": "\(name)", "error": "\(message)"])
                    }
                    sleep(backoff.next())
                }
                continue
            }
            do {
                try sendAcknowledgements(live)
                try pump(live, generation: generation, session: session, pending: &pending, discard: context.isStopping || stopFetching)
                if ContinuousClock.now - lastDepthCheck > (quietPeriod == nil ? .seconds(5) : .milliseconds(500)) {
                    lastDepthCheck = .now
                    try checkDepth(live)
                }
                if let quietPeriod, !stopFetching, !context.isStopping {
                    let idle = pending.isEmpty && mailbox.isEmpty && readyMessages.load(ordering: .relaxed) == 0
                    if quiet.observe(idle: idle, delivered: delivered.load(ordering: .relaxed), lasting: quietPeriod) {
                        logger.notice(
                            "rabbitmq source reached the end of its input: the queue stayed empty",
                            metadata: ["source": "\(name)", "queue": "\(queue)", "quietPeriod": "\(quietPeriod)"])
                        shared.withLock { $0.stopFetching = true }
                        mailbox.finish()
                    }
                }
            } catch {
                logger.warning(
                    "rabbitmq source lost its connection; reconnecting (unacknowledged deliveries come back redelivered)",
                    metadata: ["source": "\(name)", "error": "\(error)", "generation": "\(generation)"])
                live.destroy()
                connection = nil
                pending = []
                mailbox.purge(generation: generation)
                shared.withLock {
                    $0.liveGeneration = nil
                    $0.health = .connecting
                }
                connectionUp.record(0)
                sleep(backoff.next())
            }
        }
        if let connection {
            do {
                try sendAcknowledgements(connection)
            } catch {
                logger.warning(
                    "rabbitmq source could not send its last acknowledgements", metadata: ["source": "\(name)", "error": "\(error)"])
            }
            connection.close()
        }
        connectionUp.record(0)
        let waiter = shared.withLock { shared -> CheckedContinuation<Void, Never>? in
            shared.finished = true
            shared.liveGeneration = nil
            shared.health = .down("closed")
            defer { shared.closeWaiter = nil }
            return shared.closeWaiter
        }
        logger.info("rabbitmq source closed", metadata: ["source": "\(name)"])
        waiter?.resume()
    }

    /// Sleeps on the I/O thread, waking early for close.
    func sleep(_ duration: Duration) {
        let deadline = ContinuousClock.now + duration
        while ContinuousClock.now < deadline {
            if shared.withLock({ $0.closing }) { return }
            var descriptor = pollfd(fd: wake.readEnd, events: Int16(POLLIN), revents: 0)
            let left = deadline - ContinuousClock.now
            let millis = max(1, min(100, Int32(left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000)))
            _ = poll(&descriptor, 1, millis)
            wake.drain()
        }
    }

    func connect() throws(AMQPError) -> AMQPConnection {
        let connection = try AMQPConnection(settings)
        try RabbitMQOptions.declare(exchanges, on: connection)
        if let declaration = queueDeclaration {
            try connection.declareQueue(
                queue, passive: false, durable: declaration.durable, exclusive: declaration.exclusive, autoDelete: declaration.autoDelete,
                arguments: declaration.arguments)
        }
        for binding in bindings {
            try connection.bindQueue(queue, exchange: binding.exchange, routingKey: binding.routingKey, arguments: binding.arguments)
        }
        let counts = try connection.declareQueue(queue, passive: true)
        depth.record(counts.messages)
        readyMessages.store(Int(counts.messages), ordering: .relaxed)
        try connection.openChannel(2)
        try connection.qos(prefetch: prefetch)
        _ = try connection.consume(queue: queue, consumerTag: consumerTag, exclusive: fencing == .exclusive)
        return connection
    }

    /// Sends one `basic.ack` with `multiple` for everything the ledger released since the last.
    func sendAcknowledgements(_ connection: AMQPConnection) throws(AMQPError) {
        let (through, count) = shared.withLock { shared -> (UInt64, UInt64) in
            guard shared.releasedThrough > shared.ackedThrough else { return (0, 0) }
            defer { shared.ackedThrough = shared.releasedThrough }
            return (shared.releasedThrough, shared.releasedThrough - shared.ackedThrough)
        }
        guard through > 0 else { return }
        try connection.ack(through, multiple: true)
        acks.increment(by: Int(count))
    }

    /// The queue's ready-message count, asked on channel 2 so the consumer channel is undisturbed.
    func checkDepth(_ connection: AMQPConnection) throws(AMQPError) {
        let counts = try connection.declareQueue(queue, channel: 2, passive: true)
        depth.record(counts.messages)
        readyMessages.store(Int(counts.messages), ordering: .relaxed)
    }

    /// Waits for a delivery (or an acknowledgement to send) and reads what arrived.
    func pump(_ connection: AMQPConnection, generation: Int32, session: UInt64, pending: inout [Message], discard: Bool) throws(AMQPError) {
        var socketReady = connection.hasBufferedData
        if !socketReady {
            var descriptors = [
                pollfd(fd: connection.socketDescriptor, events: Int16(POLLIN), revents: 0),
                pollfd(fd: wake.readEnd, events: Int16(POLLIN), revents: 0),
            ]
            let ready = poll(&descriptors, 2, 100)
            if ready > 0 && descriptors[1].revents != 0 { wake.drain() }
            socketReady = ready > 0 && descriptors[0].revents != 0
        }
        // Even when the socket is quiet, enter the library briefly: it sends heartbeats and
        // notices a broker that stopped sending them only inside its own calls.
        var timeout = AMQPConnection.timeval(socketReady ? .milliseconds(50) : .milliseconds(1))
        amqp_maybe_release_buffers(connection.state)
        var envelope = amqp_envelope_t()
        let reply = amqp_consume_message(connection.state, &envelope, &timeout, 0)
        switch reply.reply_type {
        case AMQP_RESPONSE_NORMAL:
            defer { amqp_destroy_envelope(&envelope) }
            deliveries.increment()
            delivered.add(1, ordering: .relaxed)
            if envelope.redelivered != 0 { redeliveries.increment() }
            if !discard {
                pending.append(Self.message(envelope, generation: generation, session: session, keyHeader: keyHeader))
            }
        case AMQP_RESPONSE_LIBRARY_EXCEPTION where reply.library_error == AMQP_STATUS_TIMEOUT.rawValue:
            break
        case AMQP_RESPONSE_LIBRARY_EXCEPTION where reply.library_error == AMQP_STATUS_UNEXPECTED_STATE.rawValue:
            if let frame = try connection.waitFrame(timeout: .seconds(1)) {
                try connection.handleUnexpected(frame)
            }
        default:
            throw AMQPError.from(reply, "consuming from queue '\(queue)' failed") ?? .library(0, "consuming failed")
        }
        if !pending.isEmpty && (pending.count >= batchLimit || !connection.hasBufferedData) {
            mailbox.push(.init(generation: generation, messages: pending))
            pending = []
        }
    }

    /// A bounded run's end for a queue: empty, with nothing delivered, for a quiet period.
    struct QuietWatch {
        var since: ContinuousClock.Instant?
        var delivered = -1

        /// Whether the queue has been quiet for `lasting` as of now.
        mutating func observe(idle: Bool, delivered count: Int, lasting: Duration, now: ContinuousClock.Instant = .now) -> Bool {
            defer { delivered = count }
            guard idle, count == delivered else {
                since = nil
                return false
            }
            if since == nil { since = now }
            return now - since! >= lasting
        }
    }

    /// Header names for AMQP properties and delivery facts.
    enum HeaderName {
        static let contentType = "amqp-content-type"
        static let contentEncoding = "amqp-content-encoding"
        static let deliveryMode = "amqp-delivery-mode"
        static let priority = "amqp-priority"
        static let correlationID = "amqp-correlation-id"
        static let replyTo = "amqp-reply-to"
        static let expiration = "amqp-expiration"
        static let messageID = "amqp-message-id"
        static let timestamp = "amqp-timestamp"
        static let type = "amqp-type"
        static let userID = "amqp-user-id"
        static let appID = "amqp-app-id"
        static let exchange = "amqp-exchange"
        static let redelivered = "amqp-redelivered"
    }

    /// Converts a delivery: body → value, routing key → channel, properties → `amqp-*` headers,
    /// AMQP headers → headers (the `keyHeader` one → key), tag → offset, generation → partition,
    /// the connection's random identity → session.
    static func message(_ envelope: amqp_envelope_t, generation: Int32, session: UInt64, keyHeader: String = "") -> Message {
        let properties = envelope.message.properties
        let flags = properties._flags
        var headers: [Header] = []
        func add(_ flag: Int32, _ name: String, _ bytes: amqp_bytes_t) {
            if flags & amqp_flags_t(flag) != 0 { headers.append(Header(name: name, value: bytes.array)) }
        }
        add(AMQP_BASIC_CONTENT_TYPE_FLAG, HeaderName.contentType, properties.content_type)
        add(AMQP_BASIC_CONTENT_ENCODING_FLAG, HeaderName.contentEncoding, properties.content_encoding)
        if flags & amqp_flags_t(AMQP_BASIC_DELIVERY_MODE_FLAG) != 0 {
            headers.append(Header(HeaderName.deliveryMode, String(properties.delivery_mode)))
        }
        if flags & amqp_flags_t(AMQP_BASIC_PRIORITY_FLAG) != 0 { headers.append(Header(HeaderName.priority, String(properties.priority))) }
        add(AMQP_BASIC_CORRELATION_ID_FLAG, HeaderName.correlationID, properties.correlation_id)
        add(AMQP_BASIC_REPLY_TO_FLAG, HeaderName.replyTo, properties.reply_to)
        add(AMQP_BASIC_EXPIRATION_FLAG, HeaderName.expiration, properties.expiration)
        add(AMQP_BASIC_MESSAGE_ID_FLAG, HeaderName.messageID, properties.message_id)
        var timestamp = currentMillis()
        if flags & amqp_flags_t(AMQP_BASIC_TIMESTAMP_FLAG) != 0 {
            headers.append(Header(HeaderName.timestamp, String(properties.timestamp)))
            // Seconds; one too large to be a time in milliseconds keeps the receive time.
            let (millis, overflow) = Int64(clamping: properties.timestamp).multipliedReportingOverflow(by: 1000)
            if !overflow { timestamp = millis }
        }
        add(AMQP_BASIC_TYPE_FLAG, HeaderName.type, properties.type)
        add(AMQP_BASIC_USER_ID_FLAG, HeaderName.userID, properties.user_id)
        add(AMQP_BASIC_APP_ID_FLAG, HeaderName.appID, properties.app_id)
        headers.append(Header(name: HeaderName.exchange, value: envelope.exchange.array))
        headers.append(Header(HeaderName.redelivered, envelope.redelivered != 0 ? "true" : "false"))
        var key: [UInt8]?
        if flags & amqp_flags_t(AMQP_BASIC_HEADERS_FLAG) != 0 {
            for (name, value) in decodeTable(properties.headers) where name != RabbitMQTarget.sequenceHeader {
                if key == nil && !keyHeader.isEmpty && name == keyHeader {
                    key = value
                    continue
                }
                headers.append(Header(name: name, value: value))
            }
        }
        return Message(
            key: key, value: envelope.message.body.array, headers: headers, channel: envelope.routing_key.string,
            timestamp: timestamp, partition: generation, offset: Int64(bitPattern: envelope.delivery_tag), session: session)
    }
}
