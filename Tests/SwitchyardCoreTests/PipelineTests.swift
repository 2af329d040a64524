import Synchronization
import Testing
@testable import SwitchyardCore

/// Router, target runners and source context together, in process.
@Suite("Routing and delivery")
struct PipelineTests {
    // MARK: fan-out

    @Test func aFannedOutMessageIsAcknowledgedOnlyAfterBothTargetsConfirmed() async throws {
        let gate = Gate()
        let fast = ScriptedTarget()
        let slow = ScriptedTarget { _, _ in
            await gate.pass()
            return .allWritten
        }
        let pipeline = Pipeline(
            targets: [.init(name: "fast", target: fast), .init(name: "slow", target: slow)],
            routes: [Route(name: "r", from: ["src"], to: ["fast", "slow"])])
        try await pipeline.submit(messages(offsets: 10...12))
        await eventually("the fast target wrote the batch") { fast.written.count == 3 }
        await eventually("the slow target is writing") { gate.arrivals == 1 }
        #expect(pipeline.source.acks.isEmpty)
        gate.open()
        await eventually("the batch is acknowledged") { pipeline.source.acknowledgedCount == 3 }
        #expect(pipeline.source.acks == [Ack(shard: 0, through: 12, count: 3)])
        #expect(fast.writtenOffsets == [10, 11, 12])
        #expect(slow.writtenOffsets == [10, 11, 12])
        await pipeline.shutdown()
        #expect(pipeline.router.budget.used == 0)
    }

    // MARK: backpressure

    @Test func submitWaitsWhileTheByteBudgetIsSpentAndResumesWhenTheTargetCatchesUp() async throws {
        let gate = Gate()
        let target = ScriptedTarget { _, _ in
            await gate.pass()
            return .allWritten
        }
        let pipeline = Pipeline(
            targets: [.init(name: "t", target: target)],
            routes: [Route(name: "r", from: ["src"], to: ["t"])],
            budget: 100)
        let budget = pipeline.router.budget
        // The first batch is larger than the budget: it is admitted because nothing is in use.
        try await pipeline.submit(messages(offsets: 0...1))
        await eventually("the target is blocked in its write") { gate.arrivals == 1 }
        let returned = Flag()
        let second = Task {
            try await pipeline.submit(messages(offsets: 2...3))
            returned.set()
        }
        await eventually("the second submit waits for the budget") { budget.suspensions == 1 }
        #expect(!returned.isSet)
        #expect(pipeline.source.acks.isEmpty)
        gate.open()
        try await second.value
        #expect(returned.isSet)
        await eventually("both batches are acknowledged") { pipeline.source.acknowledgedCount == 4 }
        #expect(target.writtenOffsets == [0, 1, 2, 3])
        await pipeline.shutdown()
        #expect(budget.used == 0)
    }

    @Test func submitWaitsWhileTheTargetQueueIsFull() async throws {
        let gate = Gate()
        let target = ScriptedTarget { _, _ in
            await gate.pass()
            return .allWritten
        }
        let pipeline = Pipeline(
            targets: [
                .init(
                    name: "t", target: target, batching: BatchingPolicy(maxMessages: 2, maxBytes: 1 << 20, maxDelay: .milliseconds(1)),
                    queueCapacity: 2)
            ],
            routes: [Route(name: "r", from: ["src"], to: ["t"])])
        try await pipeline.submit(messages(offsets: 0...1))
        await eventually("the target is blocked in its write") { gate.arrivals == 1 }
        try await pipeline.submit(messages(offsets: 2...3))  // fills the queue
        let returned = Flag()
        let third = Task {
            try await pipeline.submit(messages(offsets: 4...5))
            returned.set()
        }
        // The worker is blocked, so the queue stays full and the third submit cannot return.
        await eventually("the queue is full") { pipeline["t"].queuedMessages == 2 }
        #expect(!returned.isSet)
        gate.open()
        try await third.value
        await eventually("everything is acknowledged") { pipeline.source.acknowledgedCount == 6 }
        #expect(target.writtenOffsets == [0, 1, 2, 3, 4, 5])
        await pipeline.shutdown()
    }

    @Test func concurrentProducersThroughATinyQueueDeliverEveryMessageExactlyOnce() async throws {
        let target = ScriptedTarget()
        let pipeline = Pipeline(
            targets: [
                .init(
                    name: "t", target: target, batching: BatchingPolicy(maxMessages: 3, maxBytes: 1 << 20, maxDelay: .milliseconds(1)),
                    lanes: 2, queueCapacity: 2)
            ],
            routes: [Route(name: "r", from: ["src"], to: ["t"], ordering: .partition)])
        let shards: [Int32] = [0, 1, 2, 3, 4, 5, 6, 7]
        try await withThrowingTaskGroup(of: Void.self) { group in
            for shard in shards {
                group.addTask {
                    for round in Int64(0)..<50 {
                        try await pipeline.submit(shard: shard, messages(shard: shard, offsets: (round * 2)...(round * 2 + 1)))
                    }
                }
            }
            try await group.waitForAll()
        }
        await eventually("everything is acknowledged") { pipeline.source.acknowledgedCount == 800 }
        let written = target.written
        #expect(written.count == 800)
        for shard in shards {
            #expect(written.filter { $0.partition == shard }.map(\.offset) == Array(0..<100), "shard \(shard)")
        }
        await pipeline.shutdown()
        #expect(pipeline.router.budget.used == 0)
    }

    // MARK: retries and errors

    @Test func aRetriableBatchErrorIsRetriedUntilItSucceedsAndWritesOnce() async throws {
        let target = ScriptedTarget { call, _ in
            if call < 2 { throw ConnectorError.retriable("connection reset") }
            return .allWritten
        }
        let pipeline = Pipeline(targets: [.init(name: "t", target: target)], routes: [Route(name: "r", from: ["src"], to: ["t"])])
        try await pipeline.submit(messages(offsets: 0...2))
        await eventually("the batch is acknowledged") { pipeline.source.acknowledgedCount == 3 }
        #expect(target.calls.count == 3)
        #expect(target.calls.allSatisfy { $0.map(\.offset) == [0, 1, 2] })
        #expect(target.writtenOffsets == [0, 1, 2])
        #expect(pipeline.source.acks == [Ack(shard: 0, through: 2, count: 3)])
        #expect(pipeline["t"].pausedReason == nil)
        await pipeline.shutdown()
    }

    @Test func anErrorThatIsNotAConnectorErrorIsRetried() async throws {
        struct Oops: Error {}
        let target = ScriptedTarget { call, _ in
            if call == 0 { throw Oops() }
            return .allWritten
        }
        let pipeline = Pipeline(targets: [.init(name: "t", target: target)], routes: [Route(name: "r", from: ["src"], to: ["t"])])
        try await pipeline.submit(messages(offsets: 0...1))
        await eventually("the batch is acknowledged") { pipeline.source.acknowledgedCount == 2 }
        #expect(target.writtenOffsets == [0, 1])
        await pipeline.shutdown()
    }

    @Test func aRetriableMessageFailureRetriesOnlyThatMessage() async throws {
        let target = ScriptedTarget { call, _ in
            if call == 0 { return WriteResult(failures: [(1, .retriable("throttled"))]) }
            return .allWritten
        }
        let pipeline = Pipeline(targets: [.init(name: "t", target: target)], routes: [Route(name: "r", from: ["src"], to: ["t"])])
        try await pipeline.submit(messages(offsets: 0...2))
        await eventually("the batch is acknowledged") { pipeline.source.acknowledgedCount == 3 }
        #expect(target.calls.map { $0.map(\.offset) } == [[0, 1, 2], [1]])
        #expect(target.writtenOffsets.sorted() == [0, 1, 2])
        // 0 is released at once; 1 (and 2 behind it) only after the retry.
        #expect(pipeline.source.acks == [Ack(shard: 0, through: 0, count: 1), Ack(shard: 0, through: 2, count: 2)])
        await pipeline.shutdown()
    }

    @Test func aPermanentMessageErrorGoesToTheDeadLetterTargetWithErrorHeaders() async throws {
        let dlqGate = Gate()
        let main = ScriptedTarget { call, _ in
            if call == 0 { return WriteResult(failures: [(1, .permanent("column total is not a number"))]) }
            return .allWritten
        }
        let dlq = ScriptedTarget { _, _ in
            await dlqGate.pass()
            return .allWritten
        }
        let pipeline = Pipeline(
            targets: [.init(name: "main", target: main), .init(name: "dlq", target: dlq)],
            routes: [Route(name: "r", from: ["orders"], to: ["main"])],
            sourceName: "orders", deadLetter: "dlq")
        try await pipeline.submit(shard: 4, messages(shard: 4, offsets: 20...22, channel: "orders.eu", headers: [Header("type", "order")]))
        await eventually("the dead-letter target got the message") { dlqGate.arrivals == 1 }
        #expect(main.writtenOffsets == [20, 22])
        // 20 is released; 21 waits for the dead-letter target and holds 22 back.
        #expect(pipeline.source.acks == [Ack(shard: 4, through: 20, count: 1)])
        dlqGate.open()
        await eventually("the batch is acknowledged") { pipeline.source.acknowledgedCount == 3 }
        #expect(pipeline.source.acks == [Ack(shard: 4, through: 20, count: 1), Ack(shard: 4, through: 22, count: 2)])
        let dead = try #require(dlq.written.first)
        #expect(dlq.written.count == 1)
        #expect(dead.offset == 21)
        #expect(dead.value == messages(offsets: [21]).first?.value)
        func header(_ name: String) -> String? { dead.header(name).map { String(decoding: $0, as: UTF8.self) } }
        #expect(header("type") == "order")
        #expect(header(DeadLetterHeaders.error) == "column total is not a number")
        #expect(header(DeadLetterHeaders.errorKind) == "permanent")
        #expect(header(DeadLetterHeaders.source) == "orders")
        #expect(header(DeadLetterHeaders.target) == "main")
        #expect(header(DeadLetterHeaders.channel) == "orders.eu")
        #expect(header(DeadLetterHeaders.partition) == "4")
        #expect(header(DeadLetterHeaders.offset) == "21")
        #expect(DeadLetterHeaders.error == "switchyard-error")
        #expect(DeadLetterHeaders.source == "switchyard-source")
        #expect(DeadLetterHeaders.partition == "switchyard-partition")
        #expect(DeadLetterHeaders.offset == "switchyard-offset")
        #expect(pipeline["main"].stoppedReason == nil)
        await pipeline.shutdown()
        #expect(pipeline.router.budget.used == 0)
    }

    @Test func aRetriableMessageFailureIsDeadLetteredAfterMaxAttempts() async throws {
        let main = ScriptedTarget { _, messages in
            // Offset 1 never gets through.
            WriteResult(failures: messages.enumerated().filter { $0.element.offset == 1 }.map { ($0.offset, .retriable("timeout")) })
        }
        let dlq = ScriptedTarget()
        let pipeline = Pipeline(
            targets: [.init(name: "main", target: main), .init(name: "dlq", target: dlq)],
            routes: [Route(name: "r", from: ["src"], to: ["main"])],
            retry: RetryPolicy(initialBackoff: .milliseconds(1), maxBackoff: .milliseconds(2), maxAttempts: 3),
            deadLetter: "dlq")
        try await pipeline.submit(messages(offsets: 0...2))
        await eventually("the batch is acknowledged") { pipeline.source.acknowledgedCount == 3 }
        #expect(main.calls.count == 3)
        #expect(dlq.writtenOffsets == [1])
        #expect(dlq.written.first?.header(DeadLetterHeaders.errorKind) == Array("permanent".utf8))
        await pipeline.shutdown()
    }

    @Test func aThrownPermanentErrorDeadLettersTheWholeBatch() async throws {
        let main = ScriptedTarget { _, _ in throw ConnectorError.permanent("record too large") }
        let dlq = ScriptedTarget()
        let pipeline = Pipeline(
            targets: [.init(name: "main", target: main), .init(name: "dlq", target: dlq)],
            routes: [Route(name: "r", from: ["src"], to: ["main"])],
            deadLetter: "dlq")
        try await pipeline.submit(messages(offsets: 0...1))
        await eventually("the batch is acknowledged") { pipeline.source.acknowledgedCount == 2 }
        #expect(main.calls.count == 1)
        #expect(dlq.writtenOffsets == [0, 1])
        #expect(dlq.written.first?.header(DeadLetterHeaders.error) == Array("record too large".utf8))
        await pipeline.shutdown()
    }

    @Test func aPermanentMessageErrorWithoutADeadLetterTargetStopsTheRouteAndHoldsTheWatermark() async throws {
        let target = ScriptedTarget { _, messages in
            WriteResult(
                failures: messages.enumerated().filter { $0.element.offset == 6 }.map {
                    ($0.offset, .permanent("violates constraint orders_pk"))
                })
        }
        let pipeline = Pipeline(
            targets: [
                .init(name: "t", target: target, batching: BatchingPolicy(maxMessages: 3, maxBytes: 1 << 20, maxDelay: .milliseconds(1)))
            ],
            routes: [Route(name: "r", from: ["src"], to: ["t"])])
        try await pipeline.submit(shard: 2, messages(shard: 2, offsets: 5...7))
        try await pipeline.submit(shard: 2, messages(shard: 2, offsets: 8...9))
        await eventually("the target stopped") { pipeline["t"].stoppedReason != nil }
        let reason = try #require(pipeline["t"].stoppedReason)
        #expect(reason.contains("partition 2"))
        #expect(reason.contains("offset 6"))
        #expect(reason.contains("permanent error"))
        // The server's text may quote the message: it goes to the log, not to /readyz or /status.
        #expect(!reason.contains("violates constraint orders_pk"))
        #expect(pipeline["t"].tally.lastError?.message.contains("violates") == false)
        // 5 is acknowledged; 6 never is, so neither is anything after it on the shard.
        #expect(pipeline.source.acks == [Ack(shard: 2, through: 5, count: 1)])
        #expect(pipeline.context.ledger.ledger(for: 2).releasedThrough == 5)
        #expect(pipeline.context.ledger.hasPending)
        #expect(!target.writtenOffsets.contains(6))
        await pipeline.abort()
        #expect(pipeline.source.acks == [Ack(shard: 2, through: 5, count: 1)])
    }

    @Test func aTargetDownErrorPausesTheTargetUntilAWriteSucceeds() async throws {
        let gate = Gate()
        let target = ScriptedTarget { call, _ in
            if call == 0 { throw ConnectorError.targetDown("password authentication failed") }
            await gate.pass()
            return .allWritten
        }
        let pipeline = Pipeline(targets: [.init(name: "t", target: target)], routes: [Route(name: "r", from: ["src"], to: ["t"])])
        try await pipeline.submit(messages(offsets: 0...1))
        await eventually("the write is retried") { gate.arrivals == 1 }
        #expect(pipeline["t"].pausedReason == "password authentication failed")
        #expect(pipeline.source.acks.isEmpty)
        gate.open()
        await eventually("the batch is acknowledged") { pipeline.source.acknowledgedCount == 2 }
        #expect(pipeline["t"].pausedReason == nil)
        #expect(target.writtenOffsets == [0, 1])
        await pipeline.shutdown()
    }

    @Test func aTargetDownMessageFailurePausesAndRetriesThatMessage() async throws {
        let gate = Gate()
        let target = ScriptedTarget { call, _ in
            if call == 0 { return WriteResult(failures: [(0, .targetDown("bucket is missing"))]) }
            await gate.pass()
            return .allWritten
        }
        let pipeline = Pipeline(targets: [.init(name: "t", target: target)], routes: [Route(name: "r", from: ["src"], to: ["t"])])
        try await pipeline.submit(messages(offsets: 0...1))
        await eventually("the failed message is retried") { gate.arrivals == 1 }
        #expect(pipeline["t"].pausedReason == "bucket is missing")
        gate.open()
        await eventually("the batch is acknowledged") { pipeline.source.acknowledgedCount == 2 }
        #expect(pipeline["t"].pausedReason == nil)
        #expect(target.calls.map { $0.map(\.offset) } == [[0, 1], [0]])
        await pipeline.shutdown()
    }

    // MARK: batching

    @Test func batchesAreCutAtMaxMessages() async throws {
        let target = ScriptedTarget()
        let pipeline = Pipeline(
            targets: [
                .init(name: "t", target: target, batching: BatchingPolicy(maxMessages: 3, maxBytes: 1 << 30, maxDelay: .seconds(3600)))
            ],
            routes: [Route(name: "r", from: ["src"], to: ["t"])])
        try await pipeline.submit(messages(offsets: 0...6))
        await eventually("two full batches are written") { target.completedCalls.count == 2 }
        #expect(target.completedCalls == [3, 3])
        await eventually("the full batches are acknowledged") { pipeline.source.acknowledgedCount == 6 }
        #expect(pipeline.source.acks.last?.through == 5)
        pipeline["t"].flush()
        await eventually("the rest is written on flush") { target.completedCalls.count == 3 }
        #expect(target.completedCalls == [3, 3, 1])
        #expect(target.writtenOffsets == Array(0...6))
        await pipeline.shutdown()
    }

    /// Seven messages that share one payload buffer, so each is charged exactly the same bytes
    /// (a message is charged the capacity of its buffers, which the allocator decides).
    static func equalMessages() -> [Message] {
        let payload = [UInt8](repeating: UInt8(ascii: "x"), count: 100)
        return (Int64(0)...6).map { Message(value: payload, channel: "orders", partition: 0, offset: $0) }
    }

    @Test func batchesAreCutAtMaxBytes() async throws {
        let batch = Self.equalMessages()
        let target = ScriptedTarget()
        let pipeline = Pipeline(
            targets: [
                .init(
                    name: "t", target: target,
                    batching: BatchingPolicy(maxMessages: 1000, maxBytes: 3 * batch[0].accountedBytes, maxDelay: .seconds(3600)))
            ],
            routes: [Route(name: "r", from: ["src"], to: ["t"])])
        for message in batch {
            try await pipeline.submit([message])
        }
        await eventually("two full batches are written") { target.completedCalls.count == 2 }
        #expect(target.completedCalls == [3, 3])
        pipeline["t"].flush()
        await eventually("the rest is written on flush") { target.completedCalls.count == 3 }
        #expect(target.completedCalls == [3, 3, 1])
        #expect(target.writtenOffsets == Array(0...6))
        await pipeline.shutdown()
    }

    @Test func aLargeSubmittedBatchIsSplitAtMaxBytes() async throws {
        let batch = Self.equalMessages()
        let target = ScriptedTarget()
        let pipeline = Pipeline(
            targets: [
                .init(
                    name: "t", target: target,
                    batching: BatchingPolicy(maxMessages: 1000, maxBytes: 3 * batch[0].accountedBytes, maxDelay: .seconds(3600)))
            ],
            routes: [Route(name: "r", from: ["src"], to: ["t"])])
        try await pipeline.submit(batch)
        await eventually("two full batches are written") { target.completedCalls.count == 2 }
        #expect(target.completedCalls == [3, 3])
        pipeline["t"].flush()
        await eventually("the rest is written on flush") { target.completedCalls.count == 3 }
        #expect(target.writtenOffsets == Array(0...6))
        await eventually("everything is acknowledged") { pipeline.source.acknowledgedCount == 7 }
        await pipeline.shutdown()
    }

    @Test func aPartialBatchIsWrittenAfterMaxDelay() async throws {
        let target = ScriptedTarget()
        let pipeline = Pipeline(
            targets: [
                .init(name: "t", target: target, batching: BatchingPolicy(maxMessages: 100, maxBytes: 1 << 30, maxDelay: .milliseconds(20)))
            ],
            routes: [Route(name: "r", from: ["src"], to: ["t"])])
        try await pipeline.submit(messages(offsets: 0...1))
        await eventually("the partial batch is written") { target.completedCalls.count == 1 }
        #expect(target.completedCalls == [2])
        await eventually("it is acknowledged") { pipeline.source.acknowledgedCount == 2 }
        await pipeline.shutdown()
    }

    @Test func flushWritesPartialBatchesAtOnceEvenWithAnHourOfMaxDelay() async throws {
        let target = ScriptedTarget()
        let pipeline = Pipeline(
            targets: [
                .init(name: "t", target: target, batching: BatchingPolicy(maxMessages: 100, maxBytes: 1 << 30, maxDelay: .seconds(3600)))
            ],
            routes: [Route(name: "r", from: ["src"], to: ["t"])])
        try await pipeline.submit(messages(offsets: 0...1))
        try await pipeline.submit(messages(offsets: 2...2))
        // The worker has taken the messages and is waiting for more.
        await eventually("the worker holds a partial batch") { pipeline["t"].queuedMessages == 0 }
        #expect(target.calls.isEmpty)
        pipeline["t"].flush()
        await eventually("the partial batch is written") { target.written.count == 3 }
        #expect(target.completedCalls == [3])
        // After flush, later messages go out at once too.
        try await pipeline.submit(messages(offsets: 3...3))
        await eventually("a later message is written") { target.written.count == 4 }
        await eventually("everything is acknowledged") { pipeline.source.acknowledgedCount == 4 }
        await pipeline.shutdown()
    }

    @Test func shutdownWritesWhatIsQueuedEvenWithAnHourOfMaxDelay() async throws {
        let target = ScriptedTarget()
        let pipeline = Pipeline(
            targets: [
                .init(name: "t", target: target, batching: BatchingPolicy(maxMessages: 100, maxBytes: 1 << 30, maxDelay: .seconds(3600)))
            ],
            routes: [Route(name: "r", from: ["src"], to: ["t"])])
        try await pipeline.submit(messages(offsets: 0...4))
        await pipeline.shutdown()
        #expect(target.writtenOffsets == [0, 1, 2, 3, 4])
        #expect(pipeline.source.acknowledgedCount == 5)
    }

    // MARK: routes and filters

    @Test func routeFiltersSelectByChannelGlobAndHeaderAndAcknowledgeFilteredMessages() async throws {
        let byChannel = ScriptedTarget()
        let byHeader = ScriptedTarget()
        let pipeline = Pipeline(
            targets: [.init(name: "a", target: byChannel), .init(name: "b", target: byHeader)],
            routes: [
                Route(name: "channel", from: ["src"], to: ["a"], filter: RouteFilter(channel: Glob("orders.*"))),
                Route(name: "header", from: ["src"], to: ["b"], filter: RouteFilter(headers: [("type", Array("order".utf8))])),
            ])
        let order = [Header("type", "order")]
        let batch = [
            messages(offsets: [0], channel: "audit")[0],  // nowhere
            messages(offsets: [1], channel: "orders.eu", headers: order)[0],  // a and b
            messages(offsets: [2], channel: "orders.us")[0],  // a
            messages(offsets: [3], channel: "payments", headers: order)[0],  // b
            messages(offsets: [4], channel: "orders", headers: [Header("type", "refund")])[0],  // nowhere
        ]
        try await pipeline.submit(batch)
        await eventually("everything is acknowledged") { pipeline.source.acknowledgedCount == 5 }
        #expect(byChannel.writtenOffsets == [1, 2])
        #expect(byHeader.writtenOffsets == [1, 3])
        #expect(pipeline.source.acks.last?.through == 4)
        await pipeline.shutdown()
        #expect(pipeline.router.budget.used == 0)
    }

    @Test func aBatchThatMatchesNoRouteIsAcknowledgedAtOnceAndFreesItsBudget() async throws {
        let target = ScriptedTarget()
        let pipeline = Pipeline(
            targets: [.init(name: "t", target: target)],
            routes: [Route(name: "r", from: ["src"], to: ["t"], filter: RouteFilter(channel: Glob("orders*")))],
            budget: 1000)
        // 20 batches, each larger than the 1000-byte budget: each must be given back.
        try await bounded("every batch was submitted") {
            for round in Int64(0)..<20 {
                try await pipeline.submit(messages(offsets: (round * 10)...(round * 10 + 9), channel: "payments", size: 50))
            }
        }
        #expect(pipeline.source.acknowledgedCount == 200)
        #expect(pipeline.router.budget.used == 0)
        #expect(target.calls.isEmpty)
        await pipeline.shutdown()
    }

    @Test func aSourceWithoutRoutesHasItsMessagesAcknowledgedAsFiltered() async throws {
        let target = ScriptedTarget()
        let pipeline = Pipeline(
            targets: [.init(name: "t", target: target)],
            routes: [Route(name: "r", from: ["other"], to: ["t"])],
            budget: 1000)
        try await bounded("every batch was submitted") {
            for round in Int64(0)..<10 {
                try await pipeline.submit(messages(offsets: (round * 10)...(round * 10 + 9), size: 50))
            }
        }
        #expect(pipeline.source.acknowledgedCount == 100)
        #expect(pipeline.router.budget.used == 0)
        await pipeline.shutdown()
    }

    @Test func globMatchesStarAndQuestionMark() {
        #expect(Glob("orders*").matches("orders"))
        #expect(Glob("orders*").matches("orders.eu"))
        #expect(!Glob("orders*").matches("order"))
        #expect(Glob("*.dlq").matches("orders.dlq"))
        #expect(!Glob("*.dlq").matches("orders.dlq.x"))
        #expect(Glob("a?c").matches("abc"))
        #expect(!Glob("a?c").matches("ac"))
        #expect(Glob("a*b*c").matches("a-b-b-c"))
        #expect(Glob("exact").matches("exact"))
        #expect(!Glob("exact").matches("exactly"))
        #expect(Glob("*").matches(""))
    }

    // MARK: ordering

    @Test func partitionOrderingKeepsEachShardInOffsetOrderAcrossLanes() async throws {
        let target = ScriptedTarget { call, _ in
            // Uneven write times, so that lanes run ahead of each other.
            if call % 3 == 0 { try await Task.sleep(for: .milliseconds(1)) }
            return .allWritten
        }
        let pipeline = Pipeline(
            targets: [
                .init(
                    name: "t", target: target, batching: BatchingPolicy(maxMessages: 3, maxBytes: 1 << 30, maxDelay: .milliseconds(1)),
                    lanes: 4)
            ],
            routes: [Route(name: "r", from: ["src"], to: ["t"], ordering: .partition)])
        let shards: [Int32] = [0, 1, 2, 3, 4, 5]
        for round in Int64(0)..<5 {
            for shard in shards {
                try await pipeline.submit(shard: shard, messages(shard: shard, offsets: (round * 4)...(round * 4 + 3)))
            }
        }
        await eventually("everything is acknowledged") { pipeline.source.acknowledgedCount == 120 }
        let written = target.written
        for shard in shards {
            #expect(written.filter { $0.partition == shard }.map(\.offset) == Array(0..<20), "shard \(shard)")
            #expect(pipeline.source.acks(shard: shard).last?.through == 19)
        }
        await pipeline.shutdown()
    }

    // MARK: pipelined lanes

    @Test func aPipelinedLaneStartsUpToInFlightBatchesInOrderBeforeTheFirstIsConfirmed() async throws {
        let gate = Gate()
        let target = PipelinedTarget { _, _ in
            await gate.pass()
            return .allWritten
        }
        let pipeline = Pipeline(
            targets: [
                .init(
                    name: "t", target: target, batching: BatchingPolicy(maxMessages: 2, maxBytes: 1 << 30, maxDelay: .milliseconds(1)),
                    inFlight: 3)
            ],
            routes: [Route(name: "r", from: ["src"], to: ["t"])])
        try await pipeline.submit(messages(offsets: 0..<10))
        await eventually("three batches await their confirmation") { gate.arrivals == 3 }
        // Give a fourth start the time to happen if the bound did not hold.
        try await Task.sleep(for: .milliseconds(50))
        #expect(target.started.count == 3)
        #expect(pipeline.source.acks.isEmpty)
        gate.open()
        await eventually("everything is acknowledged") { pipeline.source.acknowledgedCount == 10 }
        #expect(target.started.map { $0.map(\.offset) } == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]])
        #expect(target.writtenOffsets.sorted() == Array(0..<10))
        #expect(pipeline.source.acks.last?.through == 9)
        await pipeline.shutdown()
        #expect(pipeline.router.budget.used == 0)
    }

    @Test func aPipelinedBatchThatFailsIsRetriedAndTheWatermarkWaitsForIt() async throws {
        let firstHeld = Gate()
        let target = PipelinedTarget { call, messages in
            guard call == 0 else { return .allWritten }
            // The first batch is confirmed last, with its first message failed.
            await firstHeld.pass()
            return WriteResult(failures: [(0, .retriable("not now"))])
        }
        let pipeline = Pipeline(
            targets: [
                .init(
                    name: "t", target: target, batching: BatchingPolicy(maxMessages: 2, maxBytes: 1 << 30, maxDelay: .milliseconds(1)),
                    inFlight: 4)
            ],
            routes: [Route(name: "r", from: ["src"], to: ["t"])])
        try await pipeline.submit(messages(offsets: 0..<6))
        await eventually("the batches behind the first are written") { target.writtenOffsets.sorted() == [2, 3, 4, 5] }
        // Nothing past the unconfirmed first batch is acknowledged.
        #expect(pipeline.source.acks.isEmpty)
        firstHeld.open()
        await eventually("everything is acknowledged") { pipeline.source.acknowledgedCount == 6 }
        #expect(target.writtenOffsets.sorted() == Array(0..<6))
        #expect(target.writes == 1)
        #expect(pipeline.source.acks.last?.through == 5)
        await pipeline.shutdown()
    }

    @Test func aPipelinedStartThatThrowsIsRetriedThroughWrite() async throws {
        let target = ThrowingStartTarget()
        let pipeline = Pipeline(
            targets: [.init(name: "t", target: target, inFlight: 2)],
            routes: [Route(name: "r", from: ["src"], to: ["t"])])
        try await pipeline.submit(messages(offsets: 0..<3))
        await eventually("everything is acknowledged") { pipeline.source.acknowledgedCount == 3 }
        #expect(target.writes.withLock { $0 } == 1)
        await pipeline.shutdown()
    }

    @Test func keyOrderingKeepsEachKeyInOrderAcrossLanes() async throws {
        let target = ScriptedTarget { call, _ in
            if call % 2 == 0 { try await Task.sleep(for: .milliseconds(1)) }
            return .allWritten
        }
        let pipeline = Pipeline(
            targets: [
                .init(
                    name: "t", target: target, batching: BatchingPolicy(maxMessages: 4, maxBytes: 1 << 30, maxDelay: .milliseconds(1)),
                    lanes: 3)
            ],
            routes: [Route(name: "r", from: ["src"], to: ["t"], ordering: .key)])
        var offset: Int64 = 0
        for _ in 0..<10 {
            var batch: [Message] = []
            for key in ["a", "b", "c", "d"] {
                batch += messages(offsets: [offset], key: Array(key.utf8))
                offset += 1
            }
            try await pipeline.submit(batch)
        }
        await eventually("everything is acknowledged") { pipeline.source.acknowledgedCount == 40 }
        let written = target.written
        #expect(written.count == 40)
        for key in ["a", "b", "c", "d"] {
            let offsets = written.filter { $0.key == Array(key.utf8) }.map(\.offset)
            #expect(offsets == offsets.sorted(), "key \(key)")
            #expect(offsets.count == 10)
        }
        #expect(pipeline.source.acks.last?.through == 39)
        await pipeline.shutdown()
    }

    // MARK: source context

    @Test func drainReturnsTrueOnceTheShardIsAcknowledged() async throws {
        let gate = Gate()
        let target = ScriptedTarget { _, _ in
            await gate.pass()
            return .allWritten
        }
        let pipeline = Pipeline(targets: [.init(name: "t", target: target)], routes: [Route(name: "r", from: ["src"], to: ["t"])])
        try await pipeline.submit(shard: 1, messages(shard: 1, offsets: 0...1))
        await eventually("the target is writing") { gate.arrivals == 1 }
        let drained = Task { await pipeline.context.drain(shard: 1, timeout: .seconds(60)) }
        gate.open()
        #expect(await drained.value)
        #expect(pipeline.source.acknowledgedCount == 2)
        await pipeline.shutdown()
    }

    @Test func drainGivesUpAfterItsTimeoutWhenAMessageIsNeverConfirmed() async throws {
        let gate = Gate()
        let target = ScriptedTarget { _, _ in
            await gate.pass()
            return .allWritten
        }
        let pipeline = Pipeline(targets: [.init(name: "t", target: target)], routes: [Route(name: "r", from: ["src"], to: ["t"])])
        try await pipeline.submit(shard: 1, messages(shard: 1, offsets: 0...1))
        await eventually("the target is writing") { gate.arrivals == 1 }
        let context = pipeline.context
        let drained = try await bounded("drain returned") { await context.drain(shard: 1, timeout: .milliseconds(10)) }
        #expect(!drained)
        #expect(pipeline.source.acks.isEmpty)
        gate.open()
        await pipeline.shutdown()
    }

    @Test func stopWakesWaitUntilStopping() async {
        let pipeline = Pipeline(targets: [.init(name: "t", target: ScriptedTarget())], routes: [Route(name: "r", from: ["src"], to: ["t"])])
        #expect(!pipeline.context.isStopping)
        let waiter = Task { await pipeline.context.waitUntilStopping() }
        pipeline.context.stop()
        await waiter.value
        #expect(pipeline.context.isStopping)
        await pipeline.context.waitUntilStopping()  // already stopping: returns at once
        await pipeline.shutdown()
    }
}

/// Its `start` throws a retriable error; `write` succeeds.
final class ThrowingStartTarget: Target {
    let writes = Mutex(0)

    func start(_ messages: [Message]) async throws -> PendingWrite {
        throw ConnectorError.retriable("not taken")
    }

    func write(_ messages: [Message]) async throws -> WriteResult {
        writes.withLock { $0 += 1 }
        return .allWritten
    }
}
