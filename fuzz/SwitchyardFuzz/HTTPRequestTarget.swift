import NIOCore
import NIOEmbedded
import SwitchyardCore
@testable import SwitchyardRuntime

/// The observability port's request handling: the input is what a client sends on one
/// connection (any number of requests, pipelined, malformed, cut short). The pipeline answers
/// or closes; it must not crash, and what it queues for one connection stays bounded.
enum HTTPRequestTarget {
    static let hub: TapHub = {
        let hub = TapHub()
        hub.configure(TapSettings(enabled: true, buffer: 4), points: [TapPoint(.source, "in")])
        return hub
    }()

    static let pages = HealthPages(
        endpoints: HealthEndpoints(
            readiness: { (false, ["target out paused: <script>"]) },
            metrics: { Array("switchyard_ready 0\n".utf8) },
            status: {
                StatusReport(
                    name: "fuzz", generation: 1, ready: false, reasons: ["r"], draining: false, uptimeSeconds: 1,
                    memory: .init(limitBytes: 1, usedBytes: 0), inflight: .init(messages: 0, bytes: 0),
                    sources: [], routes: [], targets: [], tap: .init(enabled: true, attached: []))
            },
            tap: hub),
        metricsInterval: .milliseconds(100))

    static func run(_ bytes: [UInt8]) {
        let channel = EmbeddedChannel()
        var limits = HTTPLimits()
        limits.maxPipelinedRequests = 4
        do {
            try HealthServer.configure(channel: channel, pages: pages, limits: limits)
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
            // The client sends in pieces, as a network would deliver them.
            var start = 0
            var piece = 1
            while start < bytes.count, channel.isActive {
                let end = min(bytes.count, start + piece)
                try channel.writeInbound(ByteBuffer(bytes: bytes[start..<end]))
                start = end
                piece = piece * 3 % 97 + 1
                var queued = 0
                while let out = try channel.readOutbound(as: ByteBuffer.self) {
                    queued += out.readableBytes
                }
                precondition(queued < 4 << 20, "one connection queued \(queued) bytes")
            }
            channel.embeddedEventLoop.advanceTime(by: .seconds(120))
            while try channel.readOutbound(as: ByteBuffer.self) != nil {}
        } catch {
            // A rejected request is an answer.
        }
        _ = try? channel.finish(acceptAlreadyClosed: true)
    }
}
