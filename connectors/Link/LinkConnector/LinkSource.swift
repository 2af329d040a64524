import DequeModule
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
import Logging
import Synchronization
import SwitchyardCore

/// The `link` source: listens for `link` targets of other Switchyard processes and hands what
/// they send to this process's routes (docs/link.md).
///
/// A sequence is acknowledged to its sender only when this process's targets confirmed it
/// (the core's acknowledgement of the message), and every acknowledgement gives the sender back
/// the credit the confirmed messages used. Per sender it remembers what was received and
/// confirmed, so a frame sent again after a reconnect is not handed over twice.
final class LinkSource: Source {
    static let kind = SourceKind(
        kind: "link",
        summary:
            "receives messages from link targets of other Switchyard processes over gRPC; acknowledges them when this process's targets confirmed them",
        options: ObjectSchema(
            doc: "Listens for link targets.", exclusive: [["token", "tokenFile"]],
            [
                OptionField(
                    "listen", .string, required: true,
                    doc: "address:port to listen on, e.g. 0.0.0.0:7400 or [::]:7400 (localhost means 127.0.0.1)"),
                OptionField(
                    "tls",
                    .object(
                        ObjectSchema(
                            doc:
                                "TLS: cert and key are this side's server certificate; with clientCa, senders must present a client certificate that chains to it (mutual TLS).",
                            [
                                OptionField("cert", .string, required: true, doc: "PEM file of the server certificate (chain)"),
                                OptionField("key", .string, required: true, doc: "PEM file of the server certificate's private key"),
                                OptionField(
                                    "clientCa", .string,
                                    doc:
                                        "PEM file of the authority client certificates must chain to; absent to accept senders without a certificate"
                                ),
                            ])), doc: "absent for plaintext (only on a trusted network)"),
                OptionField("token", .secret, doc: "the bearer token senders must present; use ${file:PATH}. Never shown"),
                OptionField(
                    "tokenFile", .string,
                    doc: "file whose content (whitespace trimmed) is the bearer token senders must present, read when the source is built"),
                OptionField(
                    "creditMessages", .int(min: 1, max: 10_000_000), default: "20000",
                    doc: "the window per sender: messages sent and not yet confirmed by this process's targets"),
                OptionField(
                    "creditBytes", .size, default: "64MiB", doc: "the window per sender in bytes (key, value, headers and channel)"),
                OptionField(
                    "maxFrameBytes", .size, default: "16MiB", doc: "largest frame accepted; the senders' frameBytes must stay below it"),
            ]),
        validate: validate,
        positions: .perSession,
        make: { setup in try LinkSource(setup) }
    )

    static func validate(_ options: OptionValues) -> [ConfigIssue] {
        var issues = validateLinkSecurity(options, role: .source)
        if let listen = options.string("listen") {
            switch LinkAddress.parse(listen) {
            case .failure(let error): issues.append(options.issue("listen", error.message))
            case .success(let address):
                if case .name(let host) = address.host, host != "localhost" {
                    issues.append(
                        options.issue("listen", "listen on an IP address (0.0.0.0, [::], 127.0.0.1) or localhost, not the name \(host)"))
                }
            }
        }
        if let bytes = options.size("creditBytes"), bytes < 1024 {
            issues.append(options.issue("creditBytes", "must be at least 1KiB"))
        }
        if let bytes = options.size("maxFrameBytes"), bytes < 64 * 1024 {
            issues.append(options.issue("maxFrameBytes", "must be at least 64KiB"))
        }
        return issues
    }

    let name: String
    let listen: LinkAddress
    let logger: Logger
    let security: HTTP2ServerTransport.Posix.TransportSecurity
    let isTLS: Bool
    let token: String?
    let maxFrameBytes: Int
    let ledger: ReceiverLedger
    let healthBox = Mutex<ConnectorHealth>(.connecting)
    let server = Mutex<(server: GRPCServer<HTTP2ServerTransport.Posix>, task: Task<Void, Never>)?>(nil)
    let stopping = Atomic<Bool>(false)

    init(_ setup: ConnectorSetup) throws {
        let options = setup.options
        name = setup.name
        logger = setup.logger
        switch LinkAddress.parse(options.string("listen") ?? "") {
        case .success(let address): listen = address
        case .failure(let error): throw ConnectorError.targetDown("\(options.path(of: "listen")): \(error.message)")
        }
        token = try linkToken(options)
        maxFrameBytes = options.size("maxFrameBytes") ?? 16 << 20
        if let tls = options.object("tls") {
            let files = try LinkTLSFiles(tls, authorityField: "clientCa")
            var config = HTTP2ServerTransport.Posix.TransportSecurity.TLS.defaults(
                certificateChain: [.bytes(files.certificate ?? [], format: .pem)],
                privateKey: .bytes(files.key ?? [], format: .pem)
            )
            if let authority = files.authority {
                config.clientCertificateVerification = .noHostnameVerification
                config.trustRoots = .certificates([.bytes(authority, format: .pem)])
            }
            security = .tls(config)
            isTLS = true
        } else {
            security = .plaintext
            isTLS = false
        }
        ledger = ReceiverLedger(
            source: setup.name,
            window: (options.int("creditMessages") ?? 20000, options.size("creditBytes") ?? 64 << 20),
            logger: setup.logger
        )
    }

    func run(context: SourceContext) async throws {
        stopping.store(false, ordering: .relaxed)
        let socket: GRPCNIOTransportCore.SocketAddress
        switch listen.host {
        case .ipv4(let host): socket = .ipv4(host: host, port: listen.port)
        case .ipv6(let host): socket = .ipv6(host: host, port: listen.port)
        case .name: socket = .ipv4(host: "127.0.0.1", port: listen.port)
        }
        let maxFrameBytes = self.maxFrameBytes
        let (logger, name, ledger) = (self.logger, self.name, self.ledger)
        let report: @Sendable (String, String) -> Void = { peer, error in
            ledger.refused()
            logger.error(
                "link sender refused: the TLS handshake failed (wrong or missing client certificate?)",
                metadata: [
                    "source": "\(name)", "peer": "\(peer)", "error": "\(error)",
                ])
        }
        let tls = isTLS
        let transport = HTTP2ServerTransport.Posix(
            address: socket,
            transportSecurity: security,
            config: .defaults { config in
                config.rpc.maxRequestPayloadSize = maxFrameBytes
                if tls {
                    config.channelDebuggingCallbacks.onAcceptTCPConnection = { channel in
                        TLSFailureLog.install(on: channel, report: report)
                    }
                }
            }
        )
        let service = LinkService(source: self, context: context)
        let grpcServer = GRPCServer(transport: transport, services: [service])
        let task = Task {
            do {
                try await grpcServer.serve()
            } catch {
                self.setHealth(.down("cannot listen on \(self.listen): \(describe(error))"))
            }
        }
        server.withLock { $0 = (grpcServer, task) }
        do {
            let bound = try await transport.listeningAddress
            setHealth(.up)
            logger.info(
                "link source listening",
                metadata: ["source": "\(name)", "address": "\(bound)", "tls": "\(isTLS)", "token": "\(token != nil)"])
        } catch {
            let why = "cannot listen on \(listen): \(describe(error))"
            setHealth(.down(why))
            server.withLock { $0 = nil }
            grpcServer.beginGracefulShutdown()
            task.cancel()
            await task.value
            throw ConnectorError.targetDown(why)
        }
        await context.waitUntilStopping()
        // Stop handing over new frames; streams stay open so that what is in flight can still be
        // acknowledged while the core drains. close() ends them.
        stopping.store(true, ordering: .releasing)
    }

    var health: ConnectorHealth { healthBox.withLock { $0 } }

    func setHealth(_ value: ConnectorHealth) {
        healthBox.withLock { $0 = value }
    }

    func acknowledge(shard: Int32, through offset: Int64, count: Int) {
        ledger.acknowledge(shard: shard, through: offset)
    }

    func close() async {
        stopping.store(true, ordering: .releasing)
        // Give acknowledgements already queued a moment to be written, then end the streams.
        ledger.finishStreams()
        guard
            let running = server.withLock({ state in
                defer { state = nil }
                return state
            })
        else { return }
        running.server.beginGracefulShutdown()
        try? await Task.sleep(for: .milliseconds(200))
        running.task.cancel()
        await running.task.value
        setHealth(.connecting)
        logger.info("link source closed", metadata: ["source": "\(name)", "duplicateMessages": "\(ledger.duplicates)"])
    }
}

/// The gRPC service of a link source: one `Exchange` stream per connected sender.
struct LinkService: Switchyard_Link_V1_Link.StreamingServiceProtocol {
    let source: LinkSource
    let context: SourceContext

    func exchange(
        request: StreamingServerRequest<SenderFrame>,
        context server: ServerContext
    ) async throws -> StreamingServerResponse<ReceiverFrame> {
        let peer = server.remotePeer
        if let expected = source.token {
            let presented = request.metadata[stringValues: linkAuthorizationKey].first { _ in true }
            guard let presented, presented.hasPrefix("Bearer "), tokensEqual(String(presented.dropFirst(7)), expected) else {
                source.ledger.refused()
                source.logger.error(
                    "link sender refused: the bearer token is missing or wrong", metadata: ["source": "\(source.name)", "peer": "\(peer)"])
                throw RPCError(
                    code: .unauthenticated, message: presented == nil ? "no bearer token was presented" : "the bearer token is wrong")
            }
        }
        let ledger = source.ledger
        let submitContext = context
        let source = self.source
        return StreamingServerResponse { writer in
            let (replies, outlet) = AsyncStream<ReceiverFrame>.makeStream()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await reply in replies {
                        try await writer.write(reply)
                    }
                }
                group.addTask {
                    var session: SenderSession?
                    var stream: UInt64 = 0
                    do {
                        for try await frame in request.messages {
                            switch frame.kind {
                            case .hello(let hello):
                                guard session == nil else {
                                    throw RPCError(code: .failedPrecondition, message: "a second hello on one stream")
                                }
                                guard hello.version == linkProtocolVersion else {
                                    throw RPCError(
                                        code: .failedPrecondition,
                                        message:
                                            "this receiver speaks link protocol version \(linkProtocolVersion), the sender \(hello.version)"
                                    )
                                }
                                guard !hello.senderID.isEmpty else {
                                    throw RPCError(code: .invalidArgument, message: "the hello names no sender")
                                }
                                let (attached, number, welcome) = ledger.attach(
                                    senderID: hello.senderID, name: hello.senderName, outlet: outlet)
                                session = attached
                                stream = number
                                var reply = ReceiverFrame()
                                var body = welcome
                                body.receiverName = source.name
                                reply.welcome = body
                                outlet.yield(reply)
                                source.logger.info(
                                    "link sender connected",
                                    metadata: [
                                        "source": "\(source.name)", "sender": "\(hello.senderName)", "senderID": "\(hello.senderID)",
                                        "peer": "\(peer)", "confirmedThrough": "\(welcome.confirmedThrough)",
                                    ])
                            case .batch(let batch):
                                guard let session else {
                                    throw RPCError(code: .failedPrecondition, message: "a batch before the hello")
                                }
                                if source.stopping.load(ordering: .acquiring) { return }
                                let batches = try ledger.accept(batch, from: session)
                                for local in batches {
                                    try await submitContext.submit(local)
                                }
                            case nil:
                                break
                            }
                        }
                        if let session { ledger.detach(session, stream: stream) }
                        outlet.finish()
                    } catch {
                        if let session { ledger.detach(session, stream: stream) }
                        outlet.finish()
                        if !(error is CancellationError) {
                            source.logger.warning(
                                "link stream ended",
                                metadata: ["source": "\(source.name)", "peer": "\(peer)", "error": "\(describe(error))"])
                        }
                        throw error
                    }
                }
                try await group.waitForAll()
            }
            return [:]
        }
    }
}
