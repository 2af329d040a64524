import Logging
import Metrics
import Synchronization
import SwitchyardConfig
import SwitchyardCore

/// A running connector document: its sources, target runners and router.
///
/// `run()` owns every connector task. Shutdown (ARCHITECTURE.md section 3, item 8): readiness
/// off, sources stop fetching, partial batches flush, in-flight messages drain up to the drain
/// timeout, sources commit and close, targets close. `apply(_:)` swaps in a new document:
/// unchanged sources and targets keep running.
public final class Pipeline: Sendable {
    final class RunningSource: Sendable {
        let entry: ConnectorEntry
        let source: any Source
        let context: SourceContext
        /// `run` returned by itself: the input is finished (a finite generator).
        let finished = Atomic<Bool>(false)
        let returned = Latch()
        /// When the source was built: its counters read 0 then (rates on the status page).
        let created = ContinuousClock.now

        init(entry: ConnectorEntry, source: any Source, context: SourceContext) {
            self.entry = entry
            self.source = source
            self.context = context
        }
    }

    final class RunningTarget: Sendable {
        let entry: ConnectorEntry
        let runner: TargetRunner
        let done = Latch()
        let created = ContinuousClock.now

        init(entry: ConnectorEntry, runner: TargetRunner) {
            self.entry = entry
            self.runner = runner
        }
    }

    enum Command: Sendable {
        case source(RunningSource)
        case target(RunningTarget)
        case shutdown
        case cancelAll
        case end
    }

    struct State {
        var document: ConnectorDocument
        var sources: [String: RunningSource] = [:]
        var targets: [String: RunningTarget] = [:]
        /// Runners replaced or removed by a reload, still finishing their queues.
        var retiring: [RunningTarget] = []
        var draining = false
        var shutdownRequested = false
        var generation: Int
        var boundedRunFailure: String?
    }

    let registry: ConnectorRegistry
    let logger: Logger
    public let budget: ByteBudget
    let router: Router
    let settings: DeliverySettings
    let state: Mutex<State>
    let commands: AsyncStream<Command>
    let commandSink: AsyncStream<Command>.Continuation
    let reloads: (applied: Counter, rejected: Counter)
    /// Live sampling for `switchyard tap` (`observability.tap`).
    public let tap = TapHub()
    let started = ContinuousClock.now
    let rates = RateMeter()
    /// A bounded run: every source stops at the end of what its system held when it started.
    let stopAtEnd: Bool

    /// Builds every connector of `document`. Throws when a factory fails (the document was
    /// already validated, so this means a connector could not be created at all).
    public init(document: ConnectorDocument, registry: ConnectorRegistry, logger: Logger, stopAtEnd: Bool = false) throws {
        self.stopAtEnd = stopAtEnd
        self.registry = registry
        self.logger = logger
        let limit = document.delivery.memoryLimit ?? MemoryLimit.defaultBudget()
        budget = ByteBudget(limit: limit)
        router = Router(budget: budget, logger: logger, tap: tap)
        settings = DeliverySettings(retry: document.delivery.retry, deadLetter: document.delivery.deadLetter)
        (commands, commandSink) = AsyncStream.makeStream(of: Command.self)
        reloads = (
            Counter(label: MetricNames.configReloads, dimensions: [("result", "applied")]),
            Counter(label: MetricNames.configReloads, dimensions: [("result", "rejected")])
        )
        state = Mutex(State(document: document, generation: Self.generation(of: document, previous: 0)))

        var targets: [String: RunningTarget] = [:]
        for entry in document.targets {
            targets[entry.name] = RunningTarget(entry: entry, runner: try makeRunner(entry, document))
        }
        var sources: [String: RunningSource] = [:]
        for entry in document.sources {
            sources[entry.name] = try makeSource(entry, document)
        }
        let runners = targets.mapValues(\.runner)
        settings.setRunners(runners)
        router.install(routes: document.routes, runners: runners)
        tap.configure(document.observability.tap, points: Self.tapPoints(document))
        state.withLock {
            $0.targets = targets
            $0.sources = sources
        }
        logger.info(
            "pipeline assembled",
            metadata: [
                "sources": "\(document.sources.map(\.name).joined(separator: ","))",
                "targets": "\(document.targets.map(\.name).joined(separator: ","))",
                "memoryLimit": "\(Units.formatSize(limit))",
            ])
    }

    /// Every point a tap may attach to: each source, route and target of `document`.
    static func tapPoints(_ document: ConnectorDocument) -> Set<TapPoint> {
        Set(
            document.sources.map { TapPoint(.source, $0.name) } + document.routes.map { TapPoint(.route, $0.name) }
                + document.targets.map { TapPoint(.target, $0.name) })
    }

    static func generation(of document: ConnectorDocument, previous: Int) -> Int {
        if let generation = document.generation { return generation }
        return previous + 1
    }

    func makeRunner(_ entry: ConnectorEntry, _ document: ConnectorDocument) throws -> TargetRunner {
        guard let kind = registry.target(entry.kind) else {
            throw ConnectorError.targetDown("target kind \(entry.kind) is not compiled into this binary")
        }
        var targetLogger = logger
        targetLogger[metadataKey: "target"] = "\(entry.name)"
        let feeding = Set(document.routes.filter { $0.to.contains(entry.name) }.flatMap(\.from))
        let setup = ConnectorSetup(
            name: entry.name, options: entry.options, logger: targetLogger, memoryLimit: budget.limit,
            feeders: document.sources.filter { feeding.contains($0.name) })
        let target = try kind.make(setup)
        let batching = document.batching(for: entry)
        let lanes = entry.common.int("parallelism") ?? 1
        let capacity = entry.common.int("queueCapacity") ?? max(4 * batching.maxMessages, 1024)
        let inFlight = entry.common.int("inFlight") ?? kind.batchesInFlight ?? 1
        return TargetRunner(
            name: entry.name, target: target, batching: batching, lanes: lanes, queueCapacity: capacity, inFlight: inFlight,
            settings: settings,
            logger: targetLogger, tap: tap)
    }

    func makeSource(_ entry: ConnectorEntry, _ document: ConnectorDocument) throws -> RunningSource {
        guard let kind = registry.source(entry.kind) else {
            throw ConnectorError.targetDown("source kind \(entry.kind) is not compiled into this binary")
        }
        var sourceLogger = logger
        sourceLogger[metadataKey: "source"] = "\(entry.name)"
        if stopAtEnd && !kind.stopsAtEnd {
            throw ConnectorError.targetDown("\(entry.path): a \(entry.kind) source cannot stop at the end of its input")
        }
        let setup = ConnectorSetup(
            name: entry.name, options: entry.options, logger: sourceLogger, memoryLimit: budget.limit, stopAtEnd: stopAtEnd)
        let source = try kind.make(setup)
        let context = SourceContext(
            name: entry.name, source: source, router: router, logger: sourceLogger, provenance: document.provenance(for: entry))
        return RunningSource(entry: entry, source: source, context: context)
    }

    /// Prepares every target once, together, before anything runs (``Target/prepare()``).
    /// Returns the first refusal, naming its target; other failures are logged and left to the
    /// targets' `open`.
    public func preflight() async -> String? {
        let targets = state.withLock { Array($0.targets.values) }
        let logger = self.logger
        return await withTaskGroup(of: String?.self) { group in
            for running in targets {
                group.addTask {
                    do {
                        try await running.runner.target.prepare()
                        return nil
                    } catch let refusal as ConnectorRefusal {
                        return "target \(running.entry.name) (\(running.entry.path)): \(refusal.message)"
                    } catch {
                        logger.warning(
                            "target not prepared before the start; its first open tries again",
                            metadata: [
                                "target": "\(running.entry.name)", "error": "\(error)",
                            ])
                        return nil
                    }
                }
            }
            var first: String?
            for await refusal in group where first == nil { first = refusal }
            return first
        }
    }

    /// Runs every connector until shutdown completes.
    public func run() async {
        let (sources, targets) = state.withLock { (Array($0.sources.values), Array($0.targets.values)) }
        for target in targets { commandSink.yield(.target(target)) }
        for source in sources { commandSink.yield(.source(source)) }
        await withDiscardingTaskGroup { group in
            for await command in commands {
                switch command {
                case .target(let target):
                    group.addTask {
                        await target.runner.run()
                        target.done.signal()
                    }
                case .source(let source):
                    group.addTask { await self.runSource(source) }
                case .shutdown:
                    group.addTask { await self.drain() }
                case .cancelAll:
                    group.cancelAll()
                case .end:
                    commandSink.finish()
                }
            }
        }
        logger.info("pipeline stopped")
    }

    /// Why a bounded run failed (a source failed), if it did.
    public var boundedRunFailure: String? { state.withLock { $0.boundedRunFailure } }

    /// Begins the graceful shutdown (idempotent).
    public func requestShutdown() {
        let first = state.withLock { state -> Bool in
            defer { state.shutdownRequested = true }
            return !state.shutdownRequested
        }
        if first { commandSink.yield(.shutdown) }
    }

    func runSource(_ running: RunningSource) async {
        var attempt = 0
        while !running.context.isStopping && !Task.isCancelled {
            do {
                try await running.source.run(context: running.context)
                if !running.context.isStopping { running.finished.store(true, ordering: .relaxed) }
                break
            } catch is CancellationError {
                break
            } catch {
                if running.context.isStopping { break }
                if stopAtEnd {
                    // A bounded run does not restart a failed source: it ends, and fails.
                    logger.error("source failed; the bounded run ends", metadata: ["source": "\(running.entry.name)", "error": "\(error)"])
                    state.withLock { $0.boundedRunFailure = "\(running.entry.name): \(error)" }
                    requestShutdown()
                    break
                }
                running.context.tally.recordError("source failed and restarts: \(error)")
                let delay = settings.retry.delay(attempt: attempt)
                logger.error(
                    "source failed; restarting it",
                    metadata: ["source": "\(running.entry.name)", "error": "\(error)", "retryIn": "\(delay)"])
                try? await Task.sleep(for: delay)
                attempt += 1
            }
        }
        running.returned.signal()
        await finishIfInputExhausted()
    }

    /// When every source finished its input (finite generators), waits until everything is
    /// acknowledged and shuts down, so `switchyard run` exits 0.
    func finishIfInputExhausted() async {
        let sources = state.withLock { state -> [RunningSource]? in
            guard !state.draining else { return nil }
            let all = Array(state.sources.values)
            return all.allSatisfy { $0.finished.load(ordering: .relaxed) } ? all : nil
        }
        guard let sources, !sources.isEmpty else { return }
        for source in sources { await source.context.ledger.waitUntilDrained() }
        logger.info("every source finished its input and every message is acknowledged; shutting down")
        requestShutdown()
    }

    func drain() async {
        let (sources, targets, drainTimeout) = state.withLock { state in
            state.draining = true
            return (Array(state.sources.values), Array(state.targets.values) + state.retiring, state.document.delivery.drainTimeout)
        }
        let deadline = ContinuousClock.now + drainTimeout
        logger.notice("draining: readiness is off, sources stop fetching", metadata: ["drainTimeout": "\(drainTimeout)"])
        for source in sources { source.context.stop() }
        let stopped = await withDeadline(deadline) {
            for source in sources { await source.returned.wait() }
        }
        for target in targets { target.runner.flush() }
        let drained = await withDeadline(deadline) {
            for source in sources { await source.context.ledger.waitUntilDrained() }
        }
        if drained {
            logger.notice("drained: every message in flight was written and acknowledged")
        } else {
            let pending = router.stats.inflightMessages
            logger.warning(
                "drain timeout reached; unacknowledged messages will be delivered again after restart",
                metadata: ["inflight": "\(pending)", "sourcesStopped": "\(stopped)"])
        }
        for source in sources { await source.source.close() }
        // The dead-letter target closes last: the others may still hand it messages.
        let deadLetter = state.withLock { $0.document.delivery.deadLetter }
        let first = targets.filter { $0.entry.name != deadLetter }
        let last = targets.filter { $0.entry.name == deadLetter }
        let closeDeadline = drained ? ContinuousClock.now + .seconds(5) : ContinuousClock.now + .milliseconds(100)
        for target in first { target.runner.closeQueues() }
        var closed = await withDeadline(closeDeadline) {
            for target in first { await target.done.wait() }
        }
        for target in last { target.runner.closeQueues() }
        closed =
            await withDeadline(closeDeadline) {
                for target in last { await target.done.wait() }
            } && closed
        tap.closeAll()
        if !closed || !drained || !stopped { commandSink.yield(.cancelAll) }
        commandSink.yield(.end)
    }

    // MARK: - Hot reload

    /// Applies a new, already validated document. Unchanged sources and targets keep running;
    /// changed ones are drained and replaced; removed ones are drained and closed.
    public func apply(_ document: ConnectorDocument) async throws {
        let (old, oldSources, oldTargets, draining) = state.withLock { ($0.document, $0.sources, $0.targets, $0.draining) }
        guard !draining else { return }
        let changedSources = oldSources.values.filter { running in
            !document.sources.contains { entry in
                entry.name == running.entry.name && entry.fingerprint == running.entry.fingerprint
                    && document.provenance(for: entry) == running.context.provenance
            }
        }
        let changedTargets = oldTargets.values.filter { running in
            !document.targets.contains { entry in
                entry.name == running.entry.name && entry.fingerprint == running.entry.fingerprint
                    && document.batching(for: entry) == old.batching(for: running.entry)
            }
        }
        // Build the new connectors first: a factory failure leaves the old document running.
        var newTargets: [String: RunningTarget] = [:]
        for entry in document.targets where oldTargets[entry.name] == nil || changedTargets.contains(where: { $0.entry.name == entry.name })
        {
            newTargets[entry.name] = RunningTarget(entry: entry, runner: try makeRunner(entry, document))
        }
        var newSources: [String: RunningSource] = [:]
        for entry in document.sources where oldSources[entry.name] == nil || changedSources.contains(where: { $0.entry.name == entry.name })
        {
            newSources[entry.name] = try makeSource(entry, document)
        }

        let deadline = ContinuousClock.now + old.delivery.drainTimeout
        for running in changedSources {
            running.context.stop()
            _ = await withDeadline(deadline) {
                await running.returned.wait()
                await running.context.ledger.waitUntilDrained()
            }
            await running.source.close()
        }
        var runners: [String: TargetRunner] = [:]
        var targets: [String: RunningTarget] = [:]
        for entry in document.targets {
            let running = newTargets[entry.name] ?? oldTargets[entry.name]!
            runners[entry.name] = running.runner
            targets[entry.name] = running
        }
        for running in newTargets.values { commandSink.yield(.target(running)) }
        settings.update(retry: document.delivery.retry, deadLetter: document.delivery.deadLetter)
        settings.setRunners(runners)
        router.install(routes: document.routes, runners: runners)
        tap.configure(document.observability.tap, points: Self.tapPoints(document))
        for running in changedTargets {
            running.runner.flush()
            running.runner.closeQueues()
        }
        var sources: [String: RunningSource] = [:]
        for entry in document.sources {
            sources[entry.name] = newSources[entry.name] ?? oldSources[entry.name]!
        }
        let generation = state.withLock { state -> Int in
            state.document = document
            state.sources = sources
            state.targets = targets
            state.retiring = state.retiring.filter { !$0.done.isSignalled } + changedTargets
            state.generation = Self.generation(of: document, previous: state.generation)
            return state.generation
        }
        for running in newSources.values { commandSink.yield(.source(running)) }
        budget.setLimit(document.delivery.memoryLimit ?? MemoryLimit.defaultBudget())
        LogLevelBox.shared.level = LogSetup.level(document.observability.logLevel)
        reloads.applied.increment()
        logger.notice(
            "new document applied",
            metadata: [
                "generation": "\(generation)",
                "sourcesReplaced": "\(newSources.keys.sorted().joined(separator: ","))",
                "targetsReplaced": "\(newTargets.keys.sorted().joined(separator: ","))",
                "sourcesRemoved": "\(Set(oldSources.keys).subtracting(sources.keys).sorted().joined(separator: ","))",
                "targetsRemoved": "\(Set(oldTargets.keys).subtracting(targets.keys).sorted().joined(separator: ","))",
            ])
        if old.observability.listen != document.observability.listen {
            logger.warning("observability.listen changed; the new address takes effect after a restart")
        }
    }

    /// Records that a new document was rejected (the old one keeps running). `file` is the
    /// document's path, logged with the errors (each error names the path of its problem).
    public func rejected(_ errors: DocumentErrors, file: String? = nil) {
        reloads.rejected.increment()
        var metadata: Logger.Metadata = ["errors": "\(errors.description)", "generation": "\(generation)"]
        if let file { metadata["file"] = "\(file)" }
        logger.error("new document rejected; the running document stays in force", metadata: metadata)
    }

    /// Records that a valid new document could not be applied (a connector could not be built);
    /// nothing of it took effect, the old document keeps running. Counted as rejected.
    public func applyFailed(_ error: any Error, file: String? = nil) {
        reloads.rejected.increment()
        var metadata: Logger.Metadata = ["error": "\(error)", "generation": "\(generation)"]
        if let file { metadata["file"] = "\(file)" }
        logger.error("new document could not be applied; the running document stays in force", metadata: metadata)
    }

    // MARK: - Health and metrics

    public var generation: Int { state.withLock { $0.generation } }
    public var isDraining: Bool { state.withLock { $0.draining } }

    /// Ready when not draining, every connector is connected and no target is paused or stopped.
    /// The reasons also carry the sources' notes (`note: ...`), which do not make it unready.
    public func readiness() -> (ready: Bool, reasons: [String]) {
        let (sources, targets, draining) = state.withLock { (Array($0.sources.values), Array($0.targets.values), $0.draining) }
        var reasons: [String] = []
        if draining { reasons.append("draining for shutdown") }
        for target in targets.sorted(by: { $0.entry.name < $1.entry.name }) {
            let runner = target.runner
            if let reason = runner.stoppedReason { reasons.append("target \(runner.name) stopped: \(reason)") }
            if let reason = runner.pausedReason { reasons.append("target \(runner.name) paused: \(reason)") }
            if !runner.isOpen { reasons.append("target \(runner.name) is not connected") }
            if case .down(let why) = runner.target.health { reasons.append("target \(runner.name) is down: \(why)") }
            if runner.target.health == .connecting { reasons.append("target \(runner.name) is connecting") }
        }
        for source in sources.sorted(by: { $0.entry.name < $1.entry.name }) {
            switch source.source.health {
            case .up: break
            case .connecting: reasons.append("source \(source.entry.name) is connecting")
            case .down(let why): reasons.append("source \(source.entry.name) is down: \(why)")
            }
        }
        let notes = sources.sorted(by: { $0.entry.name < $1.entry.name }).flatMap { $0.source.notes.map { "note: \($0)" } }
        return (reasons.isEmpty, reasons + notes)
    }

    /// Records the sampled gauges (called before each metrics scrape).
    public func sampleMetrics() {
        let (sources, targets, draining, generation) = state.withLock {
            (Array($0.sources.values), Array($0.targets.values), $0.draining, $0.generation)
        }
        Gauge(label: MetricNames.ready).record(readiness().ready ? 1 : 0)
        Gauge(label: MetricNames.inflightMessages).record(router.stats.inflightMessages)
        Gauge(label: MetricNames.inflightBytes).record(router.stats.inflightBytes)
        Gauge(label: MetricNames.memoryLimitBytes).record(budget.limit)
        Gauge(label: MetricNames.memoryUsedBytes).record(budget.used)
        Gauge(label: MetricNames.memoryWaits).record(Double(budget.suspensions))
        Gauge(label: MetricNames.draining).record(draining ? 1 : 0)
        Gauge(label: MetricNames.configGeneration).record(generation)
        for source in sources {
            let name = source.entry.name
            Gauge(label: MetricNames.oldestUnackedSeconds, dimensions: [("source", name)]).record(
                source.context.ledger.oldestPendingAge.seconds)
            let inflight = max(0, source.context.inflightMessages)
            let backlog = source.source.backlog
            Gauge(label: MetricNames.sourceInflight, dimensions: [("source", name)]).record(inflight)
            if let backlog { Gauge(label: MetricNames.sourceBacklog, dimensions: [("source", name)]).record(backlog) }
            Gauge(label: MetricNames.bridgeLag, dimensions: [("source", name)]).record(inflight + (backlog ?? 0))
            Gauge(label: MetricNames.connectionUp, dimensions: [("connector", name), ("role", "source")]).record(
                source.source.health.isUp ? 1 : 0)
        }
        for target in targets {
            let runner = target.runner
            let name = runner.name
            Gauge(label: MetricNames.connectionUp, dimensions: [("connector", name), ("role", "target")]).record(
                runner.isOpen && runner.target.health.isUp ? 1 : 0)
            Gauge(label: MetricNames.targetPaused, dimensions: [("target", name)]).record(runner.pausedReason == nil ? 0 : 1)
            Gauge(label: MetricNames.targetStopped, dimensions: [("target", name)]).record(runner.stoppedReason == nil ? 0 : 1)
            Gauge(label: MetricNames.targetQueueMessages, dimensions: [("target", name)]).record(runner.queuedMessages)
        }
    }
}
