import NIOCore
import NIOSSL

/// Sits right after the TLS handler of an accepted link connection and reports handshake
/// failures (a client certificate from another authority, none where one is required), which
/// gRPC itself never sees. Passes everything on unchanged.
final class TLSFailureLog: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer

    let report: @Sendable (_ peer: String, _ error: String) -> Void

    init(report: @escaping @Sendable (_ peer: String, _ error: String) -> Void) {
        self.report = report
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is NIOSSLError || error is BoringSSLError {
            report(context.channel.remoteAddress.map { "\($0)" } ?? "unknown", "\(error)")
        }
        context.fireErrorCaught(error)
    }

    /// Installs the handler after the channel's TLS handler, if it has one.
    static func install(on channel: any Channel, report: @escaping @Sendable (_ peer: String, _ error: String) -> Void) -> EventLoopFuture<
        Void
    > {
        channel.eventLoop.makeCompletedFuture {
            let operations = channel.pipeline.syncOperations
            guard let tls = try? operations.context(handlerType: NIOSSLServerHandler.self) else { return }
            try operations.addHandler(TLSFailureLog(report: report), position: .after(tls.handler))
        }
    }
}
