#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
import Logging
import Synchronization
import SwitchyardCore

/// The `link` target: sends messages to a `link` source in another Switchyard process over one
/// gRPC bidirectional stream (docs/link.md).
///
/// `write` returns only when the receiver acknowledged every message of the batch, and the
/// receiver acknowledges only what its own targets confirmed; so this process acknowledges its
/// source only after the other process delivered. Frames are sent while the receiver's credit
/// lasts. A lost stream is reopened with backoff and everything not acknowledged is sent again.
final class LinkTarget: Target {
    static let kind = TargetKind(
        kind: "link",
        summary:
            "sends messages to a link source in another Switchyard process over gRPC; a batch is written when that process's targets confirmed it",
        options: ObjectSchema(
            doc: "Sends to a link source.", exclusive: [["token", "tokenFile"]],
            [
                OptionField(
                    "address", .string, required: true, doc: "host:port of the link source, e.g. link.example.com:7400 or [::1]:7400"),
                OptionField(
                    "tls",
                    .object(
                        ObjectSchema(
                            doc:
                                "TLS: the receiver's certificate is verified against ca; cert and key are this side's client certificate (mutual TLS).",
                            [
                                OptionField(
                                    "ca", .string, required: true, doc: "PEM file of the authority the receiver's certificate must chain to"
                                ),
                                OptionField(
                                    "cert", .string, doc: "PEM file of the client certificate (chain), for a receiver that requires one"),
                                OptionField("key", .string, doc: "PEM file of the client certificate's private key"),
                                OptionField(
                                    "serverName", .string, doc: "the name the receiver's certificate must hold; default the host of address"
                                ),
                            ])), doc: "absent for plaintext (only on a trusted network)"),
                OptionField("token", .secret, doc: "bearer token sent with the stream; use ${file:PATH}. Never shown"),
                OptionField(
                    "tokenFile", .string, doc: "file whose content (whitespace trimmed) is the bearer token, read when the target is built"),
                OptionField(
                    "frameMessages", .int(min: 1, max: 100_000), default: "500", doc: "at most this many messages per frame on the wire"),
                OptionField(
                    "frameBytes", .size, default: "1MiB",
                    doc:
                        "at most about this many bytes per frame (a larger message travels alone); keep it below the source's maxFrameBytes"
                ),
                OptionField(
                    "connectTimeout", .duration, default: "10s",
                    doc: "how long opening the target waits for the receiver's welcome before reporting it down"),
                OptionField(
                    "reconnectDelay", .duration, default: "100ms",
                    doc: "first wait before reconnecting; doubles per failed attempt, with full jitter"),
                OptionField("reconnectMaxDelay", .duration, default: "5s", doc: "longest wait before reconnecting"),
                OptionField(
                    "keepalive", .duration, default: "10s",
                    doc: "HTTP/2 ping interval; a receiver that does not answer within the same time is taken as lost"),
            ]),
        validate: validate,
        batchesInFlight: 4,
        make: { setup in try LinkTarget(setup) }
    )

    static func validate(_ options: OptionValues) -> [ConfigIssue] {
        var issues = validateLinkSecurity(options, role: .target)
        if let address = options.string("address"), case .failure(let error) = LinkAddress.parse(address) {
            issues.append(options.issue("address", error.message))
        }
        if let bytes = options.size("frameBytes"), bytes < 1024 {
            issues.append(options.issue("frameBytes", "must be at least 1KiB"))
        }
        for field in ["reconnectDelay", "reconnectMaxDelay", "connectTimeout", "keepalive"] {
            if let value = options.duration(field), value < .milliseconds(1) {
                issues.append(options.issue(field, "must be at least 1ms"))
            }
        }
        if let low = options.duration("reconnectDelay"), let high = options.duration("reconnectMaxDelay"), low > high {
            issues.append(options.issue("reconnectMaxDelay", "must not be shorter than reconnectDelay"))
        }
        return issues
    }

    struct State {
        /// The frames, their sequences, the credit and which batches wait (``LinkSendWindow``).
        var window = LinkSendWindow()
        /// The writes waiting for the receiver, by the window's waiter id.
        var completions: [UInt64: Completion<Void>] = [:]
        /// Set while a stream is welcomed; nil between streams.
        var wake: AsyncStream<Void>.Continuation?
        var health: ConnectorHealth = .connecting
        var started = false
        /// Whether the current connection attempt got a welcome (resets the backoff).
        var welcomed = false

        /// The completions of `waiters` (taken out, so each is resolved once), in that order.
        mutating func take(_ waiters: [UInt64]) -> [Completion<Void>] {
            waiters.compactMap { completions.removeValue(forKey: $0) }
        }
    }

    let name: String
    let address: LinkAddress
    let token: String?
    let frameMessages: Int
    let frameBytes: Int
    let connectTimeout: Duration
    let reconnect: SwitchyardCore.RetryPolicy
    let senderID: String
    let logger: Logger
    let client: GRPCClient<HTTP2ClientTransport.Posix>
    let state = Mutex(State())
    let tasks = Mutex<[Task<Void, Never>]>([])

    init(_ setup: ConnectorSetup) throws {
        let options = setup.options
        name = setup.name
        logger = setup.logger
        switch LinkAddress.parse(options.string("address") ?? "") {
        case .success(let address): self.address = address
        case .failure(let error): throw ConnectorError.targetDown("\(options.path(of: "address")): \(error.message)")
        }
        token = try linkToken(options)
        frameMessages = options.int("frameMessages") ?? 500
        frameBytes = options.size("frameBytes") ?? 1 << 20
        connectTimeout = options.duration("connectTimeout") ?? .seconds(10)
        let initialDelay = options.duration("reconnectDelay") ?? .milliseconds(100)
        let maxDelay = options.duration("reconnectMaxDelay") ?? .seconds(5)
        reconnect = SwitchyardCore.RetryPolicy(initialBackoff: initialDelay, maxBackoff: maxDelay)
        senderID = "\(setup.name)-\(UUID().uuidString.lowercased())"

        var security = HTTP2ClientTransport.Posix.TransportSecurity.plaintext
        var authority: String?
        if let tls = options.object("tls") {
            let files = try LinkTLSFiles(tls, authorityField: "ca")
            security = .tls(
                HTTP2ClientTransport.Posix.TransportSecurity.TLS(
                    certificateChain: files.certificate.map { [.bytes($0, format: .pem)] } ?? [],
                    privateKey: files.key.map { .bytes($0, format: .pem) },
                    serverCertificateVerification: .fullVerification,
                    trustRoots: .certificates([.bytes(files.authority ?? [], format: .pem)])
                ))
            authority = tls.string("serverName")
        }
        let keepalive = options.duration("keepalive") ?? .seconds(10)
        let config = HTTP2ClientTransport.Posix.Config.defaults { config in
            config.backoff.initial = initialDelay
            config.backoff.max = maxDelay
            config.connection.keepalive = .init(time: keepalive, timeout: keepalive, allowWithoutCalls: true)
            if let authority { config.http2.authority = authority }
        }
        do {
            let transport: HTTP2ClientTransport.Posix
            switch address.host {
            case .ipv4(let host):
                transport = try HTTP2ClientTransport.Posix(
                    target: .ipv4(address: host, port: address.port), transportSecurity: security, config: config)
            case .ipv6(let host):
                transport = try HTTP2ClientTransport.Posix(
                    target: .ipv6(address: host, port: address.port), transportSecurity: security, config: config)
            case .name(let host):
                transport = try HTTP2ClientTransport.Posix(
                    target: .dns(host: host, port: address.port), transportSecurity: security, config: config)
            }
            client = GRPCClient(transport: transport)
        } catch {
            throw ConnectorError.targetDown("\(options.path): cannot set up the gRPC client: \(describe(error))")
        }
    }

    var health: ConnectorHealth { state.withLock { $0.health } }

    /// Messages sent again after a reconnect (they may arrive twice at the receiver's targets).
    var resentMessages: Int { state.withLock { $0.window.resentMessages } }

    // MARK: - Target

    func open() async throws {
        let start = state.withLock { state -> Bool in
            defer { state.started = true }
            return !state.started
        }
        if start {
            let connections = Task { [client] in
                do { try await client.runConnections() } catch {}
            }
            let maintain = Task { await self.maintain() }
            tasks.withLock { $0 = [connections, maintain] }
        }
        // Wait for the receiver's welcome, at most connectTimeout.
        let deadline = ContinuousClock.now + connectTimeout
        while true {
            switch health {
            case .up: return
            case .down(let why) where ContinuousClock.now >= deadline: throw ConnectorError.targetDown(why)
            case .connecting where ContinuousClock.now >= deadline:
                throw ConnectorError.retriable("link to \(address) not established within \(connectTimeout)")
            default: try await Task.sleep(for: .milliseconds(20))
            }
        }
    }

    func write(_ messages: [Message]) async throws -> WriteResult {
        try await start(messages).result()
    }

    /// Queues the batch's frames in sequence order and returns what waits for the receiver's
    /// acknowledgement of its last frame, so that the lane can queue its next batch meanwhile:
    /// frames go out while credit lasts, and acknowledgements are cumulative.
    func start(_ messages: [Message]) async throws -> PendingWrite {
        if messages.isEmpty { return .finished(.allWritten) }
        let frames = frame(messages)
        let completion = Completion<Void>()
        let refused = state.withLock { state -> Bool in
            guard let queued = state.window.queue(frames) else { return true }
            state.completions[queued.waiter] = completion
            state.wake?.yield()
            return false
        }
        if refused { throw ConnectorError.retriable("link target \(name) is closed") }
        return PendingWrite {
            try await completion.wait()
            return .allWritten
        }
    }

    func close() async {
        let (waiters, wake) = state.withLock { state in
            (state.take(state.window.close()), state.wake)
        }
        wake?.finish()
        for waiter in waiters {
            waiter.resolve(.failure(ConnectorError.retriable("link target \(name) closed before the receiver confirmed")))
        }
        client.beginGracefulShutdown()
        let running = tasks.withLock { $0 }
        for task in running { task.cancel() }
        for task in running { await task.value }
        let (resent, streams) = state.withLock { ($0.window.resentMessages, $0.window.streams) }
        logger.info("link target closed", metadata: ["target": "\(name)", "streams": "\(streams)", "resentMessages": "\(resent)"])
    }

    // MARK: - Frames

    /// Splits a write into frames of at most `frameMessages` messages and about `frameBytes`.
    func frame(_ messages: [Message]) -> [LinkSendWindow.Frame] {
        var frames: [LinkSendWindow.Frame] = []
        var batch = WireBatch()
        var bytes = 0
        for message in messages {
            let size = LinkWire.chargedBytes(message)
            if !batch.records.isEmpty && (batch.records.count >= frameMessages || bytes + size > frameBytes) {
                frames.append(LinkSendWindow.Frame(batch: batch, count: batch.records.count, bytes: bytes))
                batch = WireBatch()
                bytes = 0
            }
            batch.records.append(LinkWire.record(message))
            bytes += size
        }
        if !batch.records.isEmpty { frames.append(LinkSendWindow.Frame(batch: batch, count: batch.records.count, bytes: bytes)) }
        return frames
    }

    /// Takes the frames that may be sent now (``LinkSendWindow/takeSendable()``).
    func takeSendable() -> [SenderFrame] {
        state.withLock { $0.window.takeSendable() }
    }

    // MARK: - The connection

    /// Keeps one stream open until the target closes, reconnecting with backoff.
    func maintain() async {
        var attempt = 0
        while !Task.isCancelled && !state.withLock({ $0.window.closed }) {
            state.withLock { $0.welcomed = false }
            do {
                try await exchange()
                if !state.withLock({ $0.window.closed }) {
                    setHealth(.connecting, "link stream ended by the receiver; reconnecting")
                }
            } catch {
                if Task.isCancelled || state.withLock({ $0.window.closed }) { break }
                let (health, text) = classify(error)
                setHealth(health, text)
            }
            let welcomed = state.withLock { state in
                state.wake = nil
                return state.welcomed
            }
            if welcomed { attempt = 0 }
            do { try await Task.sleep(for: reconnect.delay(attempt: attempt)) } catch { break }
            attempt += 1
        }
    }

    /// One stream: Hello, Welcome, then frames out and acknowledgements in until it breaks.
    func exchange() async throws {
        let (signals, wake) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        var metadata = Metadata()
        if let token { metadata.addString("Bearer \(token)", forKey: linkAuthorizationKey) }
        var options = CallOptions.defaults
        options.waitForReady = false
        var hello = Switchyard_Link_V1_Hello()
        hello.version = linkProtocolVersion
        hello.senderID = senderID
        hello.senderName = name
        var opening = SenderFrame()
        opening.hello = hello
        let first = opening
        let stub = Switchyard_Link_V1_Link.Client(wrapping: client)
        try await stub.exchange(
            metadata: metadata, options: options,
            requestProducer: { writer in
                try await writer.write(first)
                for await _ in signals {
                    for frame in self.takeSendable() {
                        try await writer.write(frame)
                    }
                }
            },
            onResponse: { response in
                defer { wake.finish() }
                for try await reply in response.messages {
                    switch reply.kind {
                    case .welcome(let welcome):
                        try self.welcome(welcome, wake: wake)
                    case .ack(let ack):
                        self.acknowledged(ack)
                    case nil:
                        break
                    }
                }
            })
    }

    func welcome(_ welcome: Switchyard_Link_V1_Welcome, wake: AsyncStream<Void>.Continuation) throws {
        guard welcome.version == linkProtocolVersion else {
            throw ConnectorError.targetDown(
                "the link receiver speaks protocol version \(welcome.version), this sender \(linkProtocolVersion)")
        }
        let (done, resent) = state.withLock { state in
            let (resolved, resent) = state.window.welcomed(
                confirmedThrough: welcome.confirmedThrough, creditMessages: welcome.creditMessages, creditBytes: welcome.creditBytes)
            state.wake = wake
            state.welcomed = true
            return (state.take(resolved), resent)
        }
        for completion in done { completion.resolve(.success(())) }
        setHealth(
            .up, "link connected",
            metadata: [
                "receiver": "\(welcome.receiverName)", "confirmedThrough": "\(welcome.confirmedThrough)",
                "resending": "\(resent)", "creditMessages": "\(welcome.creditMessages)", "creditBytes": "\(welcome.creditBytes)",
            ])
        wake.yield()
    }

    func acknowledged(_ ack: Switchyard_Link_V1_Ack) {
        let (done, wake) = state.withLock { state in
            let resolved = state.window.acknowledged(
                through: ack.confirmedThrough, creditMessages: ack.creditMessages, creditBytes: ack.creditBytes)
            return (state.take(resolved), state.wake)
        }
        for completion in done { completion.resolve(.success(())) }
        wake?.yield()
    }

    // MARK: - Health

    func setHealth(_ health: ConnectorHealth, _ text: String, metadata extra: Logger.Metadata = [:]) {
        let changed = state.withLock { state -> Bool in
            defer { state.health = health }
            return state.health != health
        }
        guard changed else { return }
        var metadata: Logger.Metadata = ["target": "\(name)", "address": "\(address)"]
        metadata.merge(extra) { $1 }
        switch health {
        case .up: logger.info("\(text)", metadata: metadata)
        case .connecting: logger.warning("\(text)", metadata: metadata)
        case .down: logger.error("\(text)", metadata: metadata)
        }
    }

    /// How a failed stream shows on the target's health: refusals (token, certificate,
    /// protocol) are `down` with the reason; a receiver that cannot be reached is `connecting`.
    func classify(_ error: any Error) -> (ConnectorHealth, String) {
        let text = describe(error)
        if let rpc = error as? RPCError {
            switch rpc.code {
            case .unauthenticated, .permissionDenied:
                return (.down("the link receiver at \(address) refused the token: \(rpc.message)"), "link refused: \(text)")
            case .failedPrecondition, .invalidArgument, .unimplemented:
                return (.down("the link receiver at \(address) refused the stream: \(rpc.message)"), "link refused: \(text)")
            default:
                break
            }
        }
        if let connector = error as? ConnectorError {
            return (.down(connector.message), "link refused: \(connector.message)")
        }
        let lower = text.lowercased()
        if lower.contains("certificate") || lower.contains("handshake") || lower.contains("ssl") || lower.contains("tls") {
            let reason = Self.tlsReason(text)
            return (.down("TLS with the link receiver at \(address) failed: \(reason)"), "link TLS handshake failed: \(reason); \(text)")
        }
        return (.connecting, "link to \(address) lost or not reachable; reconnecting: \(text)")
    }
}

extension LinkTarget {
    /// A short reading of a TLS failure from the BoringSSL reason in `text`.
    static func tlsReason(_ text: String) -> String {
        let known: [(String, String)] = [
            (
                "UNKNOWN_CA",
                "the receiver does not accept this sender's client certificate (issued by an authority it does not trust: tls.cert)"
            ),
            ("CERTIFICATE_REQUIRED", "the receiver requires a client certificate (set tls.cert and tls.key)"),
            ("BAD_CERTIFICATE", "the receiver rejected this sender's client certificate"),
            ("CERTIFICATE_EXPIRED", "a certificate has expired"),
            ("CERTIFICATE_VERIFY_FAILED", "the receiver's certificate does not verify against tls.ca (or does not name the host)"),
            ("WRONG_VERSION_NUMBER", "the receiver does not speak TLS (is its tls section missing?)"),
        ]
        for (code, reading) in known where text.contains(code) { return "\(reading) [\(code)]" }
        return text
    }
}

/// An error and the chain of its causes, for logs and health.
func describe(_ error: any Error) -> String {
    var parts: [String] = []
    var current: (any Error)? = error
    var depth = 0
    while let item = current, depth < 6 {
        if let rpc = item as? RPCError {
            parts.append("\(rpc.code): \(rpc.message)")
            current = rpc.cause
        } else if let runtime = item as? RuntimeError {
            parts.append("\(runtime.code): \(runtime.message)")
            current = runtime.cause
        } else {
            parts.append(String(describing: item))
            current = nil
        }
        depth += 1
    }
    return parts.joined(separator: " <- ")
}
