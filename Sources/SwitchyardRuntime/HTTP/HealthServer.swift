import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization
import SwitchyardCore

/// What the HTTP endpoints show.
public struct HealthEndpoints: Sendable {
    /// Whether the process can take traffic, and why not.
    public var readiness: @Sendable () -> (ready: Bool, reasons: [String])
    /// Prometheus text exposition.
    public var metrics: @Sendable () -> [UInt8]
    /// `/status` and the status page at `/`; nil: not served.
    public var status: (@Sendable () -> StatusReport)?
    /// `/tap`; nil: not served.
    public var tap: TapHub?

    public init(
        readiness: @escaping @Sendable () -> (ready: Bool, reasons: [String]), metrics: @escaping @Sendable () -> [UInt8],
        status: (@Sendable () -> StatusReport)? = nil, tap: TapHub? = nil
    ) {
        self.readiness = readiness
        self.metrics = metrics
        self.status = status
        self.tap = tap
    }
}

/// What one client may cost the HTTP endpoints. The port listens on every interface in a pod,
/// so anyone who reaches the pod reaches it: memory, connections and time per client are
/// bounded. docs/operations.md, "Limits of the HTTP endpoints", states the defaults.
public struct HTTPLimits: Sendable {
    /// Open connections; a connection beyond them is closed as soon as it is accepted.
    public var maxConnections = 64
    /// Requests of one connection received and not yet answered (pipelining); a client that
    /// sends more without reading the answers is disconnected.
    public var maxPipelinedRequests = 16
    /// Bytes of a request's header block.
    public var maxHeaderBytes = 16 << 10
    /// Bytes of a request body (the endpoints take none).
    public var maxBodyBytes = 16 << 10
    /// A request must arrive whole within this long of its first byte (408, then closed).
    public var headerTimeout: TimeAmount = .seconds(10)
    /// A connection with no request in progress is closed after this long.
    public var idleTimeout: TimeAmount = .seconds(60)
    /// Answers must make progress into the socket within this long, or the connection is closed.
    public var writeTimeout: TimeAmount = .seconds(30)
    /// `/metrics` is rendered at most once per this interval; requests in between get the same
    /// bytes (one shared buffer, however many connections hold it).
    public var metricsInterval: Duration = .milliseconds(100)

    public init() {}
}

/// Serves `/livez`, `/readyz`, `/metrics`, the status page at `/`, `/status` and `/tap` over
/// HTTP/1.1. No endpoint shows configuration.
///
/// Backpressure: a connection reads its next request only once the answers to the previous
/// ones went into the socket (the channel is writable); answers to pipelined requests wait in
/// order while it is not. So a client that sends and never reads stops being read, and the
/// memory it holds is one socket buffer, not one answer per request it sent.
public final class HealthServer: Service {
    let host: String
    let port: Int
    let endpoints: HealthEndpoints
    let limits: HTTPLimits
    let logger: Logger

    public init(host: String, port: Int, endpoints: HealthEndpoints, limits: HTTPLimits = HTTPLimits(), logger: Logger) {
        self.host = host
        self.port = port
        self.endpoints = endpoints
        self.limits = limits
        self.logger = logger
    }

    public func run() async throws {
        let limits = self.limits
        let logger = self.logger
        let pages = HealthPages(endpoints: endpoints, metricsInterval: limits.metricsInterval)
        let gate = ConnectionGate(limit: limits.maxConnections)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 1)
            .childChannelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 4096))
            .childChannelOption(.writeBufferWaterMark, value: .init(low: 16 << 10, high: 64 << 10))
            .childChannelInitializer { channel in
                switch gate.open() {
                case .admitted:
                    channel.closeFuture.whenComplete { _ in gate.closed() }
                case .refused(let first):
                    channel.closeFuture.whenComplete { _ in gate.closed() }
                    if first {
                        logger.warning(
                            "HTTP connection limit reached; new connections are closed until some end",
                            metadata: ["limit": "\(limits.maxConnections)"])
                    }
                    return channel.close()
                }
                return channel.eventLoop.makeCompletedFuture {
                    try Self.configure(channel: channel, pages: pages, limits: limits)
                }
            }
            .bind(host: host, port: port)
            .get()
        logger.info("health and metrics endpoints listening", metadata: ["address": "\(host):\(port)"])
        await withGracefulShutdownHandler {
            try? await channel.closeFuture.get()
        } onGracefulShutdown: {
            channel.close(promise: nil)
        }
    }
}

extension HealthServer {
    /// Sets up one accepted connection: the request decoder with its limits, then the handler.
    /// (Also used by the fuzzing driver, on an embedded channel.)
    static func configure(channel: any Channel, pages: HealthPages, limits: HTTPLimits) throws {
        let sync = channel.pipeline.syncOperations
        var decoderLimits = NIOHTTPDecoderLimitConfiguration()
        decoderLimits.maxHeaderListSize = limits.maxHeaderBytes
        decoderLimits.maxHeaderFieldSize = limits.maxHeaderBytes
        decoderLimits.maxHeaderFieldCount = 100
        try sync.addHandler(RequestBytesHandler())
        try sync.configureHTTPServerPipeline(
            withPipeliningAssistance: false, withErrorHandling: true,
            withEncoderConfiguration: .init(), withDecoderLimitConfiguration: decoderLimits)
        try sync.addHandler(HealthHandler(pages: pages, limits: limits))
    }
}

/// Counts open connections against the limit.
final class ConnectionGate: Sendable {
    enum Verdict {
        case admitted
        /// `first`: the first refusal since the count was last below the limit (logged once).
        case refused(first: Bool)
    }

    let limit: Int
    let state = Mutex<(open: Int, refusing: Bool)>((0, false))

    init(limit: Int) {
        self.limit = limit
    }

    func open() -> Verdict {
        state.withLock { state in
            state.open += 1
            if state.open <= limit {
                state.refusing = false
                return .admitted
            }
            defer { state.refusing = true }
            return .refused(first: !state.refusing)
        }
    }

    func closed() {
        state.withLock { $0.open -= 1 }
    }
}

/// The answers of the endpoints, with `/metrics` rendered at most once per interval.
final class HealthPages: Sendable {
    let endpoints: HealthEndpoints
    let metricsInterval: Duration
    let rendered = Mutex<(at: ContinuousClock.Instant, body: ByteBuffer)?>(nil)
    let reported = Mutex<(at: ContinuousClock.Instant, report: StatusReport)?>(nil)

    init(endpoints: HealthEndpoints, metricsInterval: Duration) {
        self.endpoints = endpoints
        self.metricsInterval = metricsInterval
    }

    /// The Prometheus text: rendered afresh when the last rendering is older than the interval.
    /// Rendering holds the lock, so concurrent scrapes wait for one rendering instead of each
    /// making their own.
    func metrics() -> ByteBuffer {
        rendered.withLock { cached in
            let now = ContinuousClock.now
            if let cached, now - cached.at < metricsInterval { return cached.body }
            let body = ByteBuffer(bytes: endpoints.metrics())
            cached = (now, body)
            return body
        }
    }

    /// The status, computed at most once per metrics interval (so a page open in many
    /// browsers costs what one does).
    func status() -> StatusReport? {
        guard let make = endpoints.status else { return nil }
        return reported.withLock { cached in
            let now = ContinuousClock.now
            if let cached, now - cached.at < metricsInterval { return cached.report }
            let report = make()
            cached = (now, report)
            return report
        }
    }
}

/// Tells ``HealthHandler`` that bytes arrived (before the decoder sees them), so that a
/// request's header timeout starts at its first byte.
final class RequestBytesHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    struct Arrived {}

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireUserInboundEventTriggered(Arrived())
        context.fireChannelRead(data)
    }
}

/// Answers requests one at a time, in order, only while the channel is writable; holds reads
/// while answers wait; enforces the limits and timeouts of ``HTTPLimits``.
final class HealthHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    struct Request {
        var method: HTTPMethod
        var uri: String
        var version: HTTPVersion
        var keepAlive: Bool
    }

    /// What the connection is waiting for; each phase has its own timeout.
    enum Phase: Equatable {
        /// Nothing received, nothing to write.
        case idle
        /// Part of a request received.
        case receiving
        /// Answers queued or not yet in the socket.
        case writing
    }

    let pages: HealthPages
    let limits: HTTPLimits
    /// Complete requests waiting for their answers, oldest first.
    var waiting: [Request] = []
    /// The request whose head arrived and whose end has not.
    var current: Request?
    var bodyBytes = 0
    /// Bytes of a request arrived after the last complete one.
    var partial = false
    /// Answers written and not yet completely in the socket.
    var unwritten = 0
    /// A `read` held back while answers wait.
    var readHeld = false
    var closing = false
    var phase = Phase.idle
    var timer: Scheduled<Void>?
    /// A `/tap` answer in progress: the connection serves nothing else until it ends.
    var stream: TapStreamState?

    init(pages: HealthPages, limits: HTTPLimits) {
        self.pages = pages
        self.limits = limits
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { arm(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(context: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        waiting.removeAll()
        stopStreaming()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is RequestBytesHandler.Arrived {
            if !partial && current == nil {
                partial = true
                update(context: context)
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // While a tap streams, what the client sends is read (so that its leaving is seen)
        // and ignored.
        guard !closing, stream == nil else { return }
        switch unwrapInboundIn(data) {
        case .head(let head):
            partial = true
            bodyBytes = 0
            current = Request(method: head.method, uri: head.uri, version: head.version, keepAlive: head.isKeepAlive)
        case .body(let buffer):
            bodyBytes += buffer.readableBytes
            if bodyBytes > limits.maxBodyBytes {
                close(context: context)
            }
        case .end:
            guard let request = current else { return }
            current = nil
            partial = false
            waiting.append(request)
            if waiting.count > limits.maxPipelinedRequests {
                // More unanswered requests than any honest client pipelines.
                close(context: context)
                return
            }
            answer(context: context)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            answer(context: context)
        }
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if closing { return }
        if stream != nil {
            context.read()
        } else if !waiting.isEmpty || !context.channel.isWritable {
            readHeld = true
        } else {
            context.read()
        }
    }

    /// Answers waiting requests while the channel is writable; reads again once none waits.
    func answer(context: ChannelHandlerContext) {
        while !closing, !waiting.isEmpty, context.channel.isWritable {
            respond(context: context, request: waiting.removeFirst())
        }
        update(context: context)
        if !closing, readHeld, waiting.isEmpty, context.channel.isWritable {
            readHeld = false
            context.read()
        }
    }

    func respond(context: ChannelHandlerContext, request: Request) {
        let path = request.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? request.uri
        var status = HTTPResponseStatus.ok
        var body: ByteBuffer
        var contentType = "text/plain; charset=utf-8"
        if request.method != .GET && request.method != .HEAD {
            status = .methodNotAllowed
            body = ByteBuffer(string: "method not allowed\n")
        } else {
            let query = Query(request.uri)
            switch path {
            case "/" where pages.endpoints.status != nil:
                let refresh = query["refresh"].flatMap { Int($0) }.map { min(max($0, 0), 3600) } ?? 2
                body = ByteBuffer(string: StatusPage.render(pages.status()!, refreshSeconds: refresh))
                contentType = "text/html; charset=utf-8"
            case "/status" where pages.endpoints.status != nil:
                body = ByteBuffer(bytes: pages.status()!.json)
                contentType = "application/json"
            case "/tap" where pages.endpoints.tap != nil && request.method == .GET:
                switch TapStreamRequest.parse(query, hub: pages.endpoints.tap!) {
                case .success(let started):
                    startStreaming(context: context, request: request, stream: started)
                    return
                case .failure(let refusal):
                    status = refusal.status
                    body = ByteBuffer(string: refusal.message + "\n")
                }
            case "/livez":
                body = ByteBuffer(string: "ok\n")
            case "/readyz":
                let readiness = pages.endpoints.readiness()
                status = readiness.ready ? .ok : .serviceUnavailable
                body = ByteBuffer(string: (readiness.ready ? "ready\n" : "not ready\n") + readiness.reasons.map { "- \($0)\n" }.joined())
            case "/metrics":
                body = pages.metrics()
                contentType = "text/plain; version=0.0.4; charset=utf-8"
            default:
                status = .notFound
                body = ByteBuffer(string: "not found; try /, /status, /livez, /readyz or /metrics\n")
            }
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: String(body.readableBytes))
        if !request.keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))), promise: nil)
        if request.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        unwritten += 1
        let promise = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: promise)
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let keepAlive = request.keepAlive
        promise.futureResult.whenComplete { result in
            let (handler, context) = bound.value
            handler.unwritten -= 1
            if case .failure = result { handler.close(context: context); return }
            if !keepAlive {
                handler.close(context: context)
                return
            }
            // Progress: the phase starts its timeout afresh.
            handler.update(context: context, restart: true)
        }
        if !keepAlive {
            closing = true
            waiting.removeAll()
        }
    }

    /// Closes the connection once; whatever waits is dropped.
    func close(context: ChannelHandlerContext) {
        waiting.removeAll()
        guard context.channel.isActive else { return }
        closing = true
        timer?.cancel()
        timer = nil
        context.close(promise: nil)
    }

    /// Moves to the phase the state calls for; a new phase starts its timeout.
    func update(context: ChannelHandlerContext, restart: Bool = false) {
        let next: Phase = !waiting.isEmpty || unwritten > 0 ? .writing : partial || current != nil ? .receiving : .idle
        guard next != phase || timer == nil || restart else { return }
        phase = next
        arm(context: context)
    }

    func arm(context: ChannelHandlerContext) {
        timer?.cancel()
        guard !closing, stream == nil else { return }
        let timeout: TimeAmount
        switch phase {
        case .idle: timeout = limits.idleTimeout
        case .receiving: timeout = limits.headerTimeout
        case .writing: timeout = limits.writeTimeout
        }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let armed = phase
        timer = context.eventLoop.scheduleTask(in: timeout) {
            let (handler, context) = bound.value
            handler.timer = nil
            handler.expired(context: context, phase: armed)
        }
    }

    func expired(context: ChannelHandlerContext, phase: Phase) {
        guard !closing, context.channel.isActive else { return }
        if phase == .receiving, unwritten == 0, waiting.isEmpty {
            // Tell an honest but slow client why; then close whatever it does.
            var headers = HTTPHeaders()
            headers.add(name: "Content-Length", value: "0")
            headers.add(name: "Connection", value: "close")
            context.write(
                wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .requestTimeout, headers: headers))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
        close(context: context)
    }
}
