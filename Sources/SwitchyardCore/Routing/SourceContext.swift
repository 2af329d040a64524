import Logging
import Metrics
import Synchronization

/// What a running source sees of the core: where to submit, whether to stop, how to drain.
public final class SourceContext: Sendable {
    public let name: String
    public let logger: Logger
    let router: Router
    public let ledger: SourceLedger
    let metrics: SourceMetrics
    /// Provenance stamping and loop prevention (`cluster`, `skipOrigins`); nil: none.
    public let provenance: Provenance?
    let stopping = Atomic<Bool>(false)
    let waiters = Mutex<[CheckedContinuation<Void, Never>]>([])

    public init(name: String, source: any Source, router: Router, logger: Logger, provenance: Provenance? = nil) {
        self.name = name
        self.logger = logger
        self.router = router
        self.provenance = provenance
        self.metrics = SourceMetrics(source: name)
        self.ledger = SourceLedger(source: name, receiver: AckCounter(source: source, metrics: metrics), observer: router.stats)
    }

    /// Messages submitted and not yet acknowledged to the source.
    public var inflightMessages: Int { metrics.inflight.load(ordering: .relaxed) }

    /// Totals for `/status`: messages and bytes submitted, acknowledged (`secondary`), taken
    /// by no route (`tertiary`), and the latest error.
    public var tally: ConnectorTally { metrics.tally }

    /// Whether the source must stop fetching (shutdown, reload).
    public var isStopping: Bool { stopping.load(ordering: .acquiring) }

    /// The process byte budget; sources size client prefetch from its limit.
    public var budget: ByteBudget { router.budget }

    /// Hands a batch to the router. Suspends while the byte budget is spent or a target queue
    /// is full. Throws `CancellationError` when the task is cancelled while waiting.
    public func submit(_ batch: Batch) async throws {
        try await router.submit(batch, source: name, ledger: ledger, metrics: metrics, provenance: provenance)
    }

    /// Asks the source to stop fetching.
    public func stop() {
        stopping.store(true, ordering: .releasing)
        let all = waiters.withLock { waiters in
            defer { waiters = [] }
            return waiters
        }
        for waiter in all { waiter.resume() }
    }

    /// Suspends until ``stop()`` is called.
    public func waitUntilStopping() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let stopped = waiters.withLock { waiters -> Bool in
                if isStopping { return true }
                waiters.append(continuation)
                return false
            }
            if stopped { continuation.resume() }
        }
    }

    /// Waits until every message of `shard` is acknowledged, at most `timeout`. Returns whether
    /// the shard drained (used on a Kafka revoke before committing).
    public func drain(shard: Int32, timeout: Duration) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await self.ledger.waitUntilDrained(shard: shard)
                return true
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }
}

final class SourceMetrics: Sendable {
    let messages: Counter
    let bytes: Counter
    let filtered: Counter
    let acknowledged: Counter
    let provenance: ProvenanceMetrics
    /// Readable totals for `/status`: messages and bytes submitted, acknowledged (secondary),
    /// filtered (tertiary).
    let tally = ConnectorTally()
    /// Submitted and not yet acknowledged to the source.
    let inflight = Atomic<Int>(0)

    init(source: String) {
        let dimensions = [("source", source)]
        messages = Counter(label: MetricNames.sourceMessages, dimensions: dimensions)
        bytes = Counter(label: MetricNames.sourceBytes, dimensions: dimensions)
        filtered = Counter(label: MetricNames.sourceFiltered, dimensions: dimensions)
        acknowledged = Counter(label: MetricNames.sourceAcknowledged, dimensions: dimensions)
        provenance = ProvenanceMetrics(source: source)
    }
}

/// Counts acknowledged messages and forwards to the source.
final class AckCounter: AcknowledgementReceiver {
    let source: any Source
    let metrics: SourceMetrics

    init(source: any Source, metrics: SourceMetrics) {
        self.source = source
        self.metrics = metrics
    }

    func acknowledge(shard: Int32, through offset: Int64, count: Int) {
        metrics.acknowledged.increment(by: count)
        metrics.tally.secondary.add(count, ordering: .relaxed)
        metrics.inflight.subtract(count, ordering: .relaxed)
        source.acknowledge(shard: shard, through: offset, count: count)
    }
}
