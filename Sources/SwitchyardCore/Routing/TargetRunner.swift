import Logging
import Metrics
import Synchronization

/// Runs one target: its lanes (bounded queues), a worker per lane that batches, writes,
/// retries, pauses and dead-letters, and the target's connection lifecycle.
public final class TargetRunner: Sendable {
    public let name: String
    public let target: any Target
    let lanes: [DeliveryQueue]
    /// Batches each lane may have started and not yet confirmed (``Target/start(_:)``).
    let inFlight: Int
    let batching: BatchingPolicy
    let settings: DeliverySettings
    let logger: Logger
    let roundRobin = Atomic<Int>(0)

    struct Status {
        var opened = false
        var paused: String?
        var stopped: String?
        /// Why `open` refused (``ConnectorRefusal``), until an `open` succeeds.
        var refused: String?
    }

    let status = Mutex(Status())

    let written: Counter
    let retried: Counter
    let deadLettered: Counter
    let writtenBytes: Counter
    let batchSize: Recorder
    let writeTime: Metrics.Timer
    /// Readable totals for `/status`: written, bytes, retried (`secondary`), dead-lettered
    /// (`tertiary`), and the latest error.
    public let tally = ConnectorTally()
    /// Where written messages are offered to `switchyard tap` (target points).
    let tap: TapHub?

    /// - Parameters:
    ///   - lanes: parallel writers; each keeps the order of what it is given.
    ///   - queueCapacity: messages each lane holds before producers wait.
    ///   - inFlight: batches each lane may have started and not yet confirmed.
    public init(
        name: String, target: any Target, batching: BatchingPolicy, lanes: Int, queueCapacity: Int, inFlight: Int = 1,
        settings: DeliverySettings, logger: Logger, tap: TapHub? = nil
    ) {
        self.name = name
        self.inFlight = max(1, inFlight)
        self.tap = tap
        self.target = target
        self.batching = batching
        self.settings = settings
        self.logger = logger
        self.lanes = (0..<max(1, lanes)).map { _ in DeliveryQueue(capacity: queueCapacity) }
        let dimensions = [("target", name)]
        written = Counter(label: MetricNames.targetMessages, dimensions: dimensions + [("outcome", "written")])
        retried = Counter(label: MetricNames.targetMessages, dimensions: dimensions + [("outcome", "retried")])
        deadLettered = Counter(label: MetricNames.targetMessages, dimensions: dimensions + [("outcome", "dead_lettered")])
        writtenBytes = Counter(label: MetricNames.targetBytes, dimensions: dimensions)
        batchSize = Recorder(label: MetricNames.targetBatchMessages, dimensions: dimensions)
        writeTime = Metrics.Timer(label: MetricNames.targetWriteSeconds, dimensions: dimensions)
    }

    /// Why the target is paused (a permanent error of the target itself), if it is.
    public var pausedReason: String? { status.withLock { $0.paused } }
    /// Why the target stopped for good (a message that could not be written, no dead-letter target).
    public var stoppedReason: String? { status.withLock { $0.stopped ?? $0.refused } }
    public var isOpen: Bool { status.withLock { $0.opened } }
    public var queuedMessages: Int { lanes.reduce(0) { $0 + $1.depth } }

    /// Picks the lane for a run of messages by `ordering`.
    func lane(ordering: Ordering, source: String, shard: Int32) -> Int {
        guard lanes.count > 1 else { return 0 }
        switch ordering {
        case .partition:
            var hasher = Hasher()
            hasher.combine(source)
            hasher.combine(shard)
            return Int(UInt(bitPattern: hasher.finalize()) % UInt(lanes.count))
        case .none, .key:
            return Int(UInt(bitPattern: roundRobin.wrappingAdd(1, ordering: .relaxed).oldValue) % UInt(lanes.count))
        }
    }

    /// Enqueues a delivery, splitting it by key when the route orders by key.
    func enqueue(_ delivery: Delivery, ordering: Ordering, source: String, shard: Int32) async {
        if ordering == .key && lanes.count > 1 {
            var parts: [[Int]] = Array(repeating: [], count: lanes.count)
            for (i, message) in delivery.messages.enumerated() {
                var hasher = Hasher()
                hasher.combine(message.key ?? [])
                parts[Int(UInt(bitPattern: hasher.finalize()) % UInt(lanes.count))].append(i)
            }
            for (lane, positions) in parts.enumerated() where !positions.isEmpty {
                let messages = positions.map { delivery.messages[$0] }
                let indices = positions.map { Int32(delivery.batchIndex($0)) }
                let bytes = messages.reduce(0) { $0 + $1.accountedBytes }
                await lanes[lane].push(Delivery(handle: delivery.handle, messages: messages, indices: indices, bytes: bytes))
            }
            return
        }
        await lanes[lane(ordering: ordering, source: source, shard: shard)].push(delivery)
    }

    /// Flushes partial batches at once from now on (shutdown).
    public func flush() {
        for lane in lanes { lane.flush() }
    }

    /// No more messages will be routed here; the workers finish what is queued and return.
    public func closeQueues() {
        for lane in lanes { lane.close() }
    }

    /// Opens the target (retrying with backoff), then runs one worker per lane until the
    /// queues are closed and empty, then closes the target.
    public func run() async {
        var attempt = 0
        // Logged once per state change: the first failure, a change of error, and the recovery.
        var logged: String?
        while !Task.isCancelled {
            do {
                try await target.open()
                status.withLock {
                    $0.opened = true
                    $0.refused = nil
                }
                if logged != nil {
                    logger.notice("target connected", metadata: ["target": "\(name)", "attempts": "\(attempt + 1)"])
                }
                break
            } catch {
                let description = "\(error)"
                if let refusal = error as? ConnectorRefusal {
                    status.withLock { $0.refused = refusal.message }
                }
                tally.recordError("cannot connect: \(description)")
                if description != logged {
                    logged = description
                    logger.error("target could not connect; retrying", metadata: ["target": "\(name)", "error": "\(description)"])
                }
                try? await Task.sleep(for: settings.retry.delay(attempt: attempt))
                attempt += 1
            }
        }
        await withTaskGroup(of: Void.self) { group in
            for lane in lanes {
                group.addTask { await self.work(lane) }
            }
        }
        await target.close()
    }

    func work(_ lane: DeliveryQueue) async {
        guard inFlight > 1 else {
            while let deliveries = await lane.take(batching) {
                await write(deliveries, messages: Self.messages(of: deliveries))
            }
            return
        }
        // Pipelined: batches are started one at a time in the lane's order, and up to
        // `inFlight` of them await their confirmation together.
        await withTaskGroup(of: Void.self) { group in
            var running = 0
            while let deliveries = await lane.take(batching) {
                if running >= inFlight {
                    await group.next()
                    running -= 1
                }
                // A stopped target starts nothing more: what it holds stays unacknowledged.
                while stoppedReason != nil && !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(1))
                }
                let messages = Self.messages(of: deliveries)
                let started: Result<PendingWrite, any Error>
                do {
                    started = .success(try await target.start(messages))
                } catch {
                    started = .failure(error)
                }
                group.addTask { await self.write(deliveries, messages: messages, started: started) }
                running += 1
            }
        }
    }

    static func messages(of deliveries: [Delivery]) -> [Message] {
        if deliveries.count == 1 { return deliveries[0].messages }
        var messages: [Message] = []
        messages.reserveCapacity(deliveries.reduce(0) { $0 + $1.count })
        for delivery in deliveries { messages.append(contentsOf: delivery.messages) }
        return messages
    }

    /// Writes one batch until every message is written, dead-lettered, or the task is cancelled.
    /// - Parameter started: the first attempt, already started (a pipelined lane); absent,
    ///   the first attempt is a ``Target/write(_:)``.
    func write(_ deliveries: [Delivery], messages batch: [Message], started: Result<PendingWrite, any Error>? = nil) async {
        var messages = batch
        var pending = started
        // refs[i] locates messages[i]; built only when some messages fail.
        var refs: [(delivery: Int, position: Int)]?
        var attempt = 0
        var attemptsByMessage: [Int] = []
        while !messages.isEmpty {
            if Task.isCancelled { return }
            let started = ContinuousClock.now
            do {
                let result: WriteResult
                do {
                    if let first = pending {
                        pending = nil
                        result = try await first.get().result()
                    } else {
                        result = try await target.write(messages)
                    }
                } catch let error as ConnectorError where error.kind == .permanent {
                    // A permanent error thrown for the whole batch: every message failed with it.
                    result = WriteResult(failures: messages.indices.map { ($0, error) })
                }
                writeTime.recordNanoseconds(Int64((ContinuousClock.now - started).seconds * 1e9))
                batchSize.record(messages.count)
                if !result.failures.contains(where: { $0.error.kind == .targetDown }) { resume() }
                if result.failures.isEmpty {
                    succeeded(messages, refs: refs, deliveries: deliveries)
                    return
                }
                let located = refs ?? Self.locate(deliveries)
                if attemptsByMessage.isEmpty { attemptsByMessage = Array(repeating: 0, count: messages.count) }
                var failedAt = Set<Int>()
                var retry: [Int] = []
                var rejected: [(index: Int, error: ConnectorError)] = []
                var down: ConnectorError?
                for failure in result.failures {
                    failedAt.insert(failure.index)
                    switch failure.error.kind {
                    case .permanent:
                        rejected.append(failure)
                    case .retriable:
                        attemptsByMessage[failure.index] += 1
                        if let limit = settings.retry.maxAttempts, attemptsByMessage[failure.index] >= limit {
                            rejected.append(
                                (failure.index, ConnectorError.permanent("gave up after \(limit) attempts: \(failure.error.message)")))
                        } else {
                            retry.append(failure.index)
                        }
                    case .targetDown:
                        down = failure.error
                        retry.append(failure.index)
                    }
                }
                let writtenIndices = (0..<messages.count).filter { !failedAt.contains($0) }
                confirm(writtenIndices, located, deliveries)
                let bytes = writtenIndices.reduce(0) { $0 + messages[$1].value.count }
                written.increment(by: writtenIndices.count)
                writtenBytes.increment(by: bytes)
                tally.messages.add(writtenIndices.count, ordering: .relaxed)
                tally.bytes.add(bytes, ordering: .relaxed)
                if let tap, tap.isActive { tap.offer(TapPoint(.target, name), messages) { !failedAt.contains($0) } }
                recordFailures(result.failures, messages: messages, deliveries: deliveries, located: located)
                if !rejected.isEmpty {
                    await deadLetter(rejected.map { (messages[$0.index], located[$0.index], $0.error) }, deliveries)
                }
                if retry.isEmpty { return }
                retried.increment(by: retry.count)
                tally.secondary.add(retry.count, ordering: .relaxed)
                messages = retry.map { messages[$0] }
                refs = retry.map { located[$0] }
                attemptsByMessage = retry.map { attemptsByMessage[$0] }
                if let down { pause(down.message) }
                try await Task.sleep(for: down != nil ? settings.retry.ceiling(attempt: attempt) : settings.retry.delay(attempt: attempt))
                attempt += 1
            } catch let error as ConnectorError where error.kind == .targetDown {
                pause(error.message)
                retried.increment(by: messages.count)
                tally.secondary.add(messages.count, ordering: .relaxed)
                do { try await Task.sleep(for: settings.retry.ceiling(attempt: attempt)) } catch { return }
                attempt += 1
            } catch is CancellationError {
                return
            } catch {
                if attempt == 0 {
                    logger.warning(
                        "write failed; retrying with backoff",
                        metadata: ["target": "\(name)", "error": "\(error)", "messages": "\(messages.count)"])
                }
                retried.increment(by: messages.count)
                tally.secondary.add(messages.count, ordering: .relaxed)
                tally.recordError("write failed: \(error)")
                do { try await Task.sleep(for: settings.retry.delay(attempt: attempt)) } catch { return }
                attempt += 1
            }
        }
    }

    /// Records the first failure of a write in the tally. A per-message error names the
    /// message's position only: a server's error text may quote the message's contents, and
    /// the status page shows none (the text is in the log and the dead-letter headers).
    func recordFailures(
        _ failures: [(index: Int, error: ConnectorError)], messages: [Message], deliveries: [Delivery],
        located: [(delivery: Int, position: Int)]
    ) {
        guard let first = failures.first else { return }
        if first.error.kind == .targetDown {
            tally.recordError("target down: \(first.error.message)")
            return
        }
        let message = messages[first.index]
        let source = deliveries[located[first.index].delivery].handle.ledger.source
        let more = failures.count > 1 ? " (and \(failures.count - 1) more in the batch)" : ""
        tally.recordError(
            "\(first.error.kind.rawValue) error writing the message from source \(source) partition \(message.partition) offset \(message.offset)\(more)"
        )
    }

    static func locate(_ deliveries: [Delivery]) -> [(delivery: Int, position: Int)] {
        var refs: [(delivery: Int, position: Int)] = []
        for (d, delivery) in deliveries.enumerated() {
            for position in 0..<delivery.count { refs.append((d, position)) }
        }
        return refs
    }

    func succeeded(_ messages: [Message], refs: [(delivery: Int, position: Int)]?, deliveries: [Delivery]) {
        written.increment(by: messages.count)
        var bytes = 0
        for message in messages { bytes += message.value.count }
        writtenBytes.increment(by: bytes)
        tally.messages.add(messages.count, ordering: .relaxed)
        tally.bytes.add(bytes, ordering: .relaxed)
        if let tap, tap.isActive { tap.offer(TapPoint(.target, name), messages) }
        if let refs {
            confirm(Array(0..<messages.count), refs, deliveries)
        } else {
            for delivery in deliveries { delivery.confirmAll() }
        }
    }

    func confirm(_ indices: [Int], _ refs: [(delivery: Int, position: Int)], _ deliveries: [Delivery]) {
        var byDelivery: [Int: [Int]] = [:]
        for index in indices {
            let ref = refs[index]
            byDelivery[ref.delivery, default: []].append(deliveries[ref.delivery].batchIndex(ref.position))
        }
        for (d, batchIndices) in byDelivery {
            deliveries[d].handle.confirm(batchIndices)
        }
    }

    func resume() {
        let was = status.withLock { status -> String? in
            defer { status.paused = nil }
            return status.paused
        }
        if was != nil {
            logger.notice("target resumed", metadata: ["target": "\(name)"])
        }
    }

    func pause(_ reason: String) {
        let changed = status.withLock { status -> Bool in
            defer { status.paused = reason }
            return status.paused != reason
        }
        if changed {
            tally.recordError("paused: \(reason)")
            logger.error(
                "target paused: its route holds until the target recovers", metadata: ["target": "\(name)", "reason": "\(reason)"])
        }
    }

    /// Sends messages that cannot be written to the dead-letter target; without one, stops
    /// this target for good (nothing is dropped; the messages stay unacknowledged).
    func deadLetter(_ failed: [(message: Message, ref: (delivery: Int, position: Int), error: ConnectorError)], _ deliveries: [Delivery])
        async
    {
        let dlqRunner = settings.deadLetterRunner()
        guard let dlq = dlqRunner, dlq !== self else {
            let first = failed[0]
            let delivery = deliveries[first.ref.delivery]
            let origin = "source \(delivery.handle.ledger.source) partition \(first.message.partition) offset \(first.message.offset)"
            // The reason (shown by /readyz and /status) names the message by position; the
            // server's error text, which may quote the message, goes to the log only.
            let reason =
                dlqRunner === self
                ? "dead-letter target cannot write the message from \(origin) (\(first.error.kind.rawValue) error)"
                : "message from \(origin) cannot be written (\(first.error.kind.rawValue) error); no dead-letter target is configured, so the route stops"
            status.withLock { $0.stopped = reason }
            tally.recordError("stopped: \(reason)")
            logger.critical("target stopped", metadata: ["target": "\(name)", "reason": "\(reason)", "error": "\(first.error.message)"])
            // Hold the lane: the messages stay unacknowledged until shutdown.
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(3600))
            }
            return
        }
        deadLettered.increment(by: failed.count)
        tally.tertiary.add(failed.count, ordering: .relaxed)
        for item in failed {
            let delivery = deliveries[item.ref.delivery]
            logger.warning(
                "message dead-lettered",
                metadata: [
                    "target": "\(name)", "source": "\(delivery.handle.ledger.source)",
                    "partition": "\(item.message.partition)", "offset": "\(item.message.offset)", "error": "\(item.error.message)",
                ])
            var message = item.message
            message.headers.append(Header(DeadLetterHeaders.error, item.error.message))
            message.headers.append(Header(DeadLetterHeaders.errorKind, item.error.kind.rawValue))
            message.headers.append(Header(DeadLetterHeaders.source, delivery.handle.ledger.source))
            message.headers.append(Header(DeadLetterHeaders.target, name))
            message.headers.append(Header(DeadLetterHeaders.channel, message.channel))
            message.headers.append(Header(DeadLetterHeaders.partition, String(message.partition)))
            message.headers.append(Header(DeadLetterHeaders.offset, String(message.offset)))
            let index = Int32(delivery.batchIndex(item.ref.position))
            let dead = Delivery(handle: delivery.handle, messages: [message], indices: [index], bytes: message.accountedBytes)
            await dlq.enqueue(dead, ordering: .partition, source: delivery.handle.ledger.source, shard: delivery.handle.ledger.shard)
        }
    }
}
