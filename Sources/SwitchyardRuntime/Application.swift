#if canImport(Glibc)
    import Glibc
#endif
import Dispatch
import Logging
import ServiceLifecycle
import SwitchyardConfig
import SwitchyardCore

/// The pipeline as a service: graceful shutdown drains it.
final class PipelineService: Service {
    let pipeline: Pipeline

    init(pipeline: Pipeline) {
        self.pipeline = pipeline
    }

    func run() async throws {
        await withGracefulShutdownHandler {
            await pipeline.run()
        } onGracefulShutdown: {
            self.pipeline.requestShutdown()
        }
    }
}

/// `switchyard run`: loads the document, runs the pipeline, the endpoints and the reloader,
/// and handles signals (the first SIGTERM or SIGINT drains; a second exits at once).
public enum Application {
    /// Exit codes: 0 after a clean shutdown, 2 for an invalid document, 1 for other failures.
    /// `stopAtEnd`: a bounded run (every source stops at the end of what its system held when
    /// it started; the process exits 0 once all of it is acknowledged); the document is not
    /// reloaded then.
    public static func run(configPath: String, registry: ConnectorRegistry, environment: [String: String], stopAtEnd: Bool = false) async
        -> Int32
    {
        let loader = DocumentLoader(registry: registry, interpolator: Interpolator(environment: environment))
        let text: String
        switch Interpolator.readDocument(configPath) {
        case .success(let read): text = read
        case .failure(let failure):
            writeStandardError(Array("switchyard: \(failure)\n".utf8))
            return 2
        }
        let document: ConnectorDocument
        switch loader.load(text) {
        case .success(let loaded): document = loaded
        case .failure(let errors):
            writeStandardError(
                Array(
                    "switchyard: \(configPath) is not valid:\n\(errors.description.split(separator: "\n").map { "  \($0)" }.joined(separator: "\n"))\n"
                        .utf8))
            return 2
        }
        if stopAtEnd {
            let unable = document.sources.filter { registry.source($0.kind)?.stopsAtEnd != true }
            if !unable.isEmpty {
                let named = unable.map { "\($0.path) (\($0.kind))" }.joined(separator: ", ")
                writeStandardError(
                    Array(
                        "switchyard: \(configPath): --stop-at end needs sources that can stop at the end of their input (kafka, rabbitmq); these cannot: \(named)\n"
                            .utf8))
                return 2
            }
        }
        LogSetup.bootstrap(format: document.observability.logFormat, level: LogSetup.level(document.observability.logLevel))
        MetricsSetup.bootstrap()
        let logger = Logger(label: "switchyard")

        let pipeline: Pipeline
        do {
            pipeline = try Pipeline(document: document, registry: registry, logger: logger, stopAtEnd: stopAtEnd)
        } catch {
            logger.critical("cannot build the pipeline", metadata: ["error": "\(error)"])
            return 1
        }
        if let refusal = await pipeline.preflight() {
            logger.critical("a target refuses to start", metadata: ["reason": "\(refusal)"])
            writeStandardError(Array("switchyard: cannot start: \(refusal)\n".utf8))
            return 1
        }
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        let listen = document.observability.listen
        if !listen.isEmpty, let address = ListenAddress(listen) {
            let endpoints = HealthEndpoints(
                readiness: { pipeline.readiness() },
                metrics: {
                    pipeline.sampleMetrics()
                    return MetricsSetup.render()
                },
                status: { pipeline.statusReport() },
                tap: pipeline.tap)
            services.append(.init(service: HealthServer(host: address.host, port: address.port, endpoints: endpoints, logger: logger)))
        }
        services.append(.init(service: PipelineService(pipeline: pipeline), successTerminationBehavior: .gracefullyShutdownGroup))
        if !stopAtEnd {
            services.append(
                .init(service: ConfigWatcher(path: configPath, loader: loader, pipeline: pipeline, initialText: text, logger: logger)))
        }
        let group = ServiceGroup(configuration: .init(services: services, logger: logger))

        let signals = SignalHandler(logger: logger) {
            pipeline.requestShutdown()
        }
        signals.install()
        logger.info("switchyard started", metadata: ["config": "\(configPath)", "generation": "\(pipeline.generation)"])
        do {
            try await group.run()
        } catch {
            logger.critical("runtime failed", metadata: ["error": "\(error)"])
            return 1
        }
        if let failure = pipeline.boundedRunFailure {
            logger.critical("the bounded run failed", metadata: ["error": "\(failure)"])
            return 1
        }
        logger.info("switchyard stopped")
        return 0
    }
}

/// SIGTERM and SIGINT: the first begins the drain; the second exits at once, acknowledging
/// nothing more.
final class SignalHandler: Sendable {
    let logger: Logger
    let onFirst: @Sendable () -> Void
    let queue = DispatchQueue(label: "switchyard.signals")
    nonisolated(unsafe) var sources: [any DispatchSourceSignal] = []

    init(logger: Logger, onFirst: @escaping @Sendable () -> Void) {
        self.logger = logger
        self.onFirst = onFirst
    }

    func install() {
        // A write to a socket whose peer has gone must fail with EPIPE, not end the process:
        // not every client library sends with MSG_NOSIGNAL.
        signal(SIGPIPE, SIG_IGN)
        let received = SignalCount()
        for signalNumber in [SIGTERM, SIGINT] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: queue)
            source.setEventHandler { [logger, onFirst] in
                if received.increment() == 1 {
                    logger.notice("signal received; draining (send it again to exit at once)", metadata: ["signal": "\(signalNumber)"])
                    onFirst()
                } else {
                    logger.warning("second signal; exiting at once without acknowledging undelivered messages")
                    exit(1)
                }
            }
            source.resume()
            sources.append(source)
        }
    }
}

final class SignalCount: @unchecked Sendable {
    var count = 0
    /// Only called on the signal queue (serial).
    func increment() -> Int {
        count += 1
        return count
    }
}
