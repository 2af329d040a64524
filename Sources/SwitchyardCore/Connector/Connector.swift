import Logging

/// Connection health that a connector reports for `/readyz` and the connection-state metric.
public enum ConnectorHealth: Sendable, Equatable {
    case up
    case connecting
    case down(String)

    public var isUp: Bool { self == .up }
}

/// A connector that reads from a system and submits batches to the router.
///
/// `run` owns the connector's I/O: blocking C calls happen on threads the connector owns, never
/// on the cooperative pool. It returns when `context.isStopping` turns true (after handing over
/// what it fetched), or when its input is finished (a finite generator).
///
/// Acknowledgements arrive through ``AcknowledgementReceiver/acknowledge(shard:through:count:)``
/// only for the contiguous prefix that every target has confirmed.
public protocol Source: AcknowledgementReceiver {
    func run(context: SourceContext) async throws
    /// Called after `run` returned and in-flight messages drained (or the drain timed out):
    /// commit what was acknowledged and disconnect.
    func close() async
    var health: ConnectorHealth { get }
    /// Messages waiting in the source system that this source has not fetched yet (Kafka:
    /// high watermark minus the next offset, over the owned partitions; RabbitMQ: the queue's
    /// ready messages); nil when the system does not say. Sampled for the lag metrics.
    var backlog: Int? { get }
    /// Facts `/readyz` shows without making the process unready (a group member that holds no
    /// partition, for example).
    var notes: [String] { get }
    /// Whether this source is a member of a work-sharing group that holds no share of the work
    /// (a Kafka consumer that holds no partition: the group has more members than partitions).
    /// `/status` shows it; the operator counts pods whose every source is idle.
    var idle: Bool { get }
}

extension Source {
    public func close() async {}
    public var health: ConnectorHealth { .up }
    public var backlog: Int? { nil }
    public var notes: [String] { [] }
    public var idle: Bool { false }
}

/// The per-message result of a target write that did not fully succeed.
public struct WriteResult: Sendable {
    /// The messages that failed, by index into the written batch, in ascending order.
    public var failures: [(index: Int, error: ConnectorError)]

    public init(failures: [(index: Int, error: ConnectorError)] = []) {
        self.failures = failures
    }

    public static let allWritten = WriteResult()
}

/// A batch a target has taken over and not yet confirmed (``Target/start(_:)``).
public struct PendingWrite: Sendable {
    let outcome: @Sendable () async throws -> WriteResult

    /// - Parameter outcome: waits until the system confirmed the batch, or reports per-message
    ///   failures; throws as ``Target/write(_:)`` does.
    public init(_ outcome: @escaping @Sendable () async throws -> WriteResult) {
        self.outcome = outcome
    }

    /// A write that already has its outcome.
    public static func finished(_ result: WriteResult) -> PendingWrite {
        PendingWrite { result }
    }

    /// Waits for the outcome.
    public func result() async throws -> WriteResult {
        try await outcome()
    }
}

/// A connector that writes batches to a system.
///
/// `write` is called by one worker per lane; with `ordering: partition` (the default) a lane
/// sees the messages of a shard in order. It returns when the system confirmed the batch, or
/// reports per-message failures; a thrown ``ConnectorError`` applies to the whole batch
/// (`retriable` or `targetDown`; a thrown `permanent` error fails every message of the batch).
/// Any other thrown error is treated as retriable.
public protocol Target: AnyObject, Sendable {
    /// Checks and prepares what the target writes to, once, before the sources start (the
    /// Kafka target creates missing topics and checks partition counts). A thrown
    /// ``ConnectorRefusal`` stops `switchyard run` with exit status 1; any other error is
    /// logged, and `open` is expected to do the work again.
    func prepare() async throws
    /// Connects; a thrown error is retried with backoff before the first write.
    func open() async throws
    func write(_ messages: [Message]) async throws -> WriteResult
    /// Takes `messages` over and returns what waits for their confirmation, so that a lane can
    /// start its next batch meanwhile (``TargetKind/batchesInFlight``). A lane calls `start`
    /// one batch at a time, in its order; a target that pipelines hands each batch to its
    /// system in the order of the calls, before returning. The default writes the batch and
    /// returns its outcome.
    func start(_ messages: [Message]) async throws -> PendingWrite
    /// Flushes and disconnects.
    func close() async
    var health: ConnectorHealth { get }
}

extension Target {
    public func start(_ messages: [Message]) async throws -> PendingWrite {
        .finished(try await write(messages))
    }

    public func prepare() async throws {}
    public func open() async throws {}
    public func close() async {}
    public var health: ConnectorHealth { .up }
}

/// What a factory gets to build a connector.
public struct ConnectorSetup: Sendable {
    /// The entry name in the document (`spec.sources[0].name`).
    public var name: String
    public var options: OptionValues
    public var logger: Logger
    /// The process byte budget, for sizing client prefetch.
    public var memoryLimit: Int
    /// A bounded run (`switchyard run --stop-at end`): the source notes where its system ends
    /// when it starts, takes nothing past that, and returns from `run` once it handed over
    /// everything before it. Only for kinds whose ``SourceKind/stopsAtEnd`` is true.
    public var stopAtEnd: Bool
    /// For a target: the sources of the document whose routes lead to it (a Kafka target sizes
    /// the topics it creates after a Kafka source's); empty for a source.
    public var feeders: [ConnectorEntry]

    public init(
        name: String, options: OptionValues, logger: Logger, memoryLimit: Int, stopAtEnd: Bool = false, feeders: [ConnectorEntry] = []
    ) {
        self.stopAtEnd = stopAtEnd
        self.name = name
        self.options = options
        self.logger = logger
        self.memoryLimit = memoryLimit
        self.feeders = feeders
    }
}
