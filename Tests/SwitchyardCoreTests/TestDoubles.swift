import Logging
import Synchronization
import Testing
@testable import SwitchyardCore

/// A logger that prints nothing.
let quietLogger = Logger(label: "switchyard.tests", factory: { _ in SwiftLogNoOpLogHandler() })

/// One acknowledgement a source received.
struct Ack: Equatable, CustomStringConvertible {
    var shard: Int32
    var through: Int64
    var count: Int

    var description: String { "ack(shard \(shard) through \(through) count \(count))" }
}

/// A source that records the acknowledgements it gets, in order. Its `run` does nothing: tests
/// submit batches through a `SourceContext` themselves.
final class RecordingSource: Source {
    let log = Mutex<[Ack]>([])

    func run(context: SourceContext) async throws {}

    func acknowledge(shard: Int32, through offset: Int64, count: Int) {
        log.withLock { $0.append(Ack(shard: shard, through: offset, count: count)) }
    }

    var acks: [Ack] { log.withLock { $0 } }
    var acknowledgedCount: Int { acks.reduce(0) { $0 + $1.count } }
    func acks(shard: Int32) -> [Ack] { acks.filter { $0.shard == shard } }
}

/// Records batch completions reported by a ledger.
final class RecordingObserver: BatchCompletionObserver {
    let log = Mutex<[(messages: Int, bytes: Int)]>([])

    func batchCompleted(messages: Int, bytes: Int) {
        log.withLock { $0.append((messages, bytes)) }
    }

    var completions: [(messages: Int, bytes: Int)] { log.withLock { $0 } }
}

/// A gate that tasks wait at until the test opens it; counts how many arrived.
final class Gate: Sendable {
    struct State {
        var open = false
        var arrivals = 0
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    let state = Mutex(State())

    init(open: Bool = false) {
        state.withLock { $0.open = open }
    }

    func pass() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let through = state.withLock { state -> Bool in
                state.arrivals += 1
                if state.open { return true }
                state.waiters.append(continuation)
                return false
            }
            if through { continuation.resume() }
        }
    }

    func open() {
        let waiters = state.withLock { state in
            state.open = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    var arrivals: Int { state.withLock { $0.arrivals } }
}

/// A one-way flag set by a task, read by the test.
final class Flag: Sendable {
    let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .sequentiallyConsistent) }
    var isSet: Bool { value.load(ordering: .sequentiallyConsistent) }
}

/// A target whose behaviour per write call is scripted; it records every call and every message
/// it reports as written (not failed, not thrown).
final class ScriptedTarget: Target {
    /// `call` counts write calls from 0.
    typealias Behavior = @Sendable (_ call: Int, _ messages: [Message]) async throws -> WriteResult

    struct Log {
        var calls: [[Message]] = []
        var written: [Message] = []
        /// The sizes of the write calls that returned without throwing.
        var completedCalls: [Int] = []
    }

    let behavior: Behavior
    let log = Mutex(Log())

    init(_ behavior: @escaping Behavior = { _, _ in .allWritten }) {
        self.behavior = behavior
    }

    func write(_ messages: [Message]) async throws -> WriteResult {
        let call = log.withLock { log in
            log.calls.append(messages)
            return log.calls.count - 1
        }
        let result = try await behavior(call, messages)
        let failed = Set(result.failures.map(\.index))
        log.withLock { log in
            for (index, message) in messages.enumerated() where !failed.contains(index) { log.written.append(message) }
            log.completedCalls.append(messages.count)
        }
        return result
    }

    var calls: [[Message]] { log.withLock { $0.calls } }
    var written: [Message] { log.withLock { $0.written } }
    var writtenOffsets: [Int64] { written.map(\.offset) }
    var completedCalls: [Int] { log.withLock { $0.completedCalls } }
}

/// A target that pipelines (``Target/start(_:)``): it records each batch as it is handed over,
/// and confirms it when `outcome` returns (the test holds it there).
final class PipelinedTarget: Target {
    /// `call` counts start calls from 0.
    typealias Outcome = @Sendable (_ call: Int, _ messages: [Message]) async throws -> WriteResult

    struct Log {
        var started: [[Message]] = []
        var written: [Message] = []
        var writes = 0
    }

    let outcome: Outcome
    let log = Mutex(Log())

    init(_ outcome: @escaping Outcome = { _, _ in .allWritten }) {
        self.outcome = outcome
    }

    func start(_ messages: [Message]) async throws -> PendingWrite {
        let call = log.withLock { log in
            log.started.append(messages)
            return log.started.count - 1
        }
        return PendingWrite { [self] in
            let result = try await outcome(call, messages)
            record(messages, result)
            return result
        }
    }

    /// A retry: written at once.
    func write(_ messages: [Message]) async throws -> WriteResult {
        log.withLock { $0.writes += 1 }
        record(messages, .allWritten)
        return .allWritten
    }

    func record(_ messages: [Message], _ result: WriteResult) {
        let failed = Set(result.failures.map(\.index))
        log.withLock { log in
            for (index, message) in messages.enumerated() where !failed.contains(index) { log.written.append(message) }
        }
    }

    var started: [[Message]] { log.withLock { $0.started } }
    var writtenOffsets: [Int64] { log.withLock { $0.written.map(\.offset) } }
    var writes: Int { log.withLock { $0.writes } }
}

/// A deterministic generator (SplitMix64) for jitter tests.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Waits until `condition` holds, checking every millisecond; gives up after a generous bound
/// (a safety net against hangs, not a timing assertion) and records an issue.
@discardableResult
func eventually(
    _ what: String,
    within limit: Duration = .seconds(30),
    sourceLocation: SourceLocation = #_sourceLocation,
    _ condition: () -> Bool
) async -> Bool {
    let deadline = ContinuousClock.now + limit
    while !condition() {
        if ContinuousClock.now >= deadline {
            Issue.record("gave up waiting until \(what)", sourceLocation: sourceLocation)
            return false
        }
        try? await Task.sleep(for: .milliseconds(1))
    }
    return true
}

/// Thrown by ``bounded(_:within:sourceLocation:_:)`` when its body did not finish in time.
struct TimedOut: Error {}

/// Runs `body` in a task and waits for it within a generous bound; when the bound passes, records
/// an issue, cancels the task and throws ``TimedOut`` without waiting for it, so that a
/// regression fails the test instead of hanging it.
func bounded<T: Sendable>(
    _ what: String,
    within limit: Duration = .seconds(10),
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let finished = Flag()
    let task = Task {
        defer { finished.set() }
        return try await body()
    }
    guard await eventually(what, within: limit, sourceLocation: sourceLocation, { finished.isSet }) else {
        task.cancel()
        throw TimedOut()
    }
    return try await task.value
}

/// Messages of one shard with consecutive offsets.
func messages(
    shard: Int32 = 0, offsets: some Sequence<Int64>, channel: String = "orders", size: Int = 16,
    headers: [Header] = [], key: [UInt8]? = nil
) -> [Message] {
    offsets.map { offset in
        Message(
            key: key, value: Array(repeating: UInt8(ascii: "x"), count: size), headers: headers, channel: channel,
            timestamp: 1_700_000_000_000, partition: shard, offset: offset)
    }
}

/// Retries fast so tests stay quick.
let fastRetry = RetryPolicy(initialBackoff: .milliseconds(1), maxBackoff: .milliseconds(4))

/// Writes as soon as anything arrives (after at most 1 ms).
let eagerBatching = BatchingPolicy(maxMessages: 1000, maxBytes: 1 << 30, maxDelay: .milliseconds(1))

/// One source feeding target runners through a router, all in process.
final class Pipeline: Sendable {
    struct TargetSpec {
        var name: String
        var target: any Target
        var batching: BatchingPolicy = eagerBatching
        var lanes: Int = 1
        var queueCapacity: Int = 10_000
        var inFlight: Int = 1

        init(
            name: String, target: any Target, batching: BatchingPolicy = eagerBatching, lanes: Int = 1, queueCapacity: Int = 10_000,
            inFlight: Int = 1
        ) {
            self.name = name
            self.target = target
            self.batching = batching
            self.lanes = lanes
            self.queueCapacity = queueCapacity
            self.inFlight = inFlight
        }
    }

    let router: Router
    let settings: DeliverySettings
    let runners: [String: TargetRunner]
    let source = RecordingSource()
    let context: SourceContext
    let task: Task<Void, Never>

    init(
        targets: [TargetSpec], routes: [Route], sourceName: String = "src", budget: Int = 1 << 30,
        retry: RetryPolicy = fastRetry, deadLetter: String? = nil, provenance: Provenance? = nil
    ) {
        router = Router(budget: ByteBudget(limit: budget), logger: quietLogger)
        settings = DeliverySettings(retry: retry, deadLetter: deadLetter)
        var runners: [String: TargetRunner] = [:]
        for spec in targets {
            runners[spec.name] = TargetRunner(
                name: spec.name, target: spec.target, batching: spec.batching, lanes: spec.lanes,
                queueCapacity: spec.queueCapacity, inFlight: spec.inFlight, settings: settings, logger: quietLogger)
        }
        self.runners = runners
        settings.setRunners(runners)
        router.install(routes: routes, runners: runners)
        context = SourceContext(name: sourceName, source: source, router: router, logger: quietLogger, provenance: provenance)
        let all = Array(runners.values)
        task = Task {
            await withTaskGroup(of: Void.self) { group in
                for runner in all {
                    group.addTask { await runner.run() }
                }
            }
        }
    }

    subscript(name: String) -> TargetRunner { runners[name]! }

    func submit(shard: Int32 = 0, _ messages: [Message]) async throws {
        try await context.submit(Batch(shard: shard, messages: messages))
    }

    /// Closes the queues and waits for the runners to finish what they hold (cancelling them
    /// if they do not finish within a generous bound, which is recorded as an issue).
    func shutdown(sourceLocation: SourceLocation = #_sourceLocation) async {
        for runner in runners.values { runner.closeQueues() }
        let task = self.task
        let finished = Flag()
        let watcher = Task {
            await task.value
            finished.set()
        }
        // A runner that does not finish is cancelled (and recorded as an issue).
        if !(await eventually("the target runners finished", sourceLocation: sourceLocation) { finished.isSet }) {
            task.cancel()
        }
        await watcher.value
    }

    /// Stops at once (for runners that hold their lane, such as a stopped target).
    func abort() async {
        for runner in runners.values { runner.closeQueues() }
        task.cancel()
        await task.value
    }
}
