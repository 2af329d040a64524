import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

/// What the HTTP endpoints show.
public struct HealthEndpoints: Sendable {
    /// Whether the process can take traffic, and why not.
    public var readiness: @Sendable () -> (ready: Bool, reasons: [String])
    /// Prometheus text exposition.
    public var metrics: @Sendable () -> [UInt8]

    public init(readiness: @escaping @Sendable () -> (ready: Bool, reasons: [String]), metrics: @escaping @Sendable () -> [UInt8]) {
        self.readiness = readiness
        self.metrics = metrics
    }
}

/// Serves `/livez`, `/readyz` and `/metrics` over HTTP/1.1. No endpoint shows configuration.
public final class HealthServer: Service {
    let host: String
    let port: Int
    let endpoints: HealthEndpoints
    let logger: Logger

    public init(host: String, port: Int, endpoints: HealthEndpoints, logger: Logger) {
        self.host = host
        self.port = port
        self.endpoints = endpoints
        self.logger = logger
    }

    public func run() async throws {
        let endpoints = self.endpoints
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.pipeline.addHandler(HealthHandler(endpoints: endpoints))
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

final class HealthHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let endpoints: HealthEndpoints
    var head: HTTPRequestHead?

    init(endpoints: HealthEndpoints) {
        self.endpoints = endpoints
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
        case .body:
            break
        case .end:
            guard let head else { return }
            self.head = nil
            respond(context: context, head: head)
        }
    }

    func respond(context: ChannelHandlerContext, head: HTTPRequestHead) {
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        var status = HTTPResponseStatus.ok
        var body: [UInt8]
        var contentType = "text/plain; charset=utf-8"
        if head.method != .GET && head.method != .HEAD {
            status = .methodNotAllowed
            body = Array("method not allowed\n".utf8)
        } else {
            switch path {
            case "/livez":
                body = Array("ok\n".utf8)
            case "/readyz":
                let readiness = endpoints.readiness()
                status = readiness.ready ? .ok : .serviceUnavailable
                body = Array(((readiness.ready ? "ready\n" : "not ready\n") + readiness.reasons.map { "- \($0)\n" }.joined()).utf8)
            case "/metrics":
                body = endpoints.metrics()
                contentType = "text/plain; version=0.0.4; charset=utf-8"
            default:
                status = .notFound
                body = Array("not found; try /livez, /readyz or /metrics\n".utf8)
            }
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: String(body.count))
        let keepAlive = head.isKeepAlive
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        if head.method != .HEAD {
            var buffer = context.channel.allocator.buffer(capacity: body.count)
            buffer.writeBytes(body)
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        let promise: EventLoopPromise<Void>? = keepAlive ? nil : context.eventLoop.makePromise()
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: promise)
        if let promise {
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            promise.futureResult.whenComplete { _ in loopBound.value.close(promise: nil) }
        }
    }
}
