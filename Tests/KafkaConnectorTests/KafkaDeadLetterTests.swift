import Foundation
import Synchronization
import SwitchyardCore
import Testing
@testable import KafkaConnector

/// A source that only records acknowledgements; the test submits batches itself.
final class ManualSource: Source {
    let acks = Mutex<[Int64]>([])
    func run(context: SourceContext) async throws {}
    func acknowledge(shard: Int32, through offset: Int64, count: Int) { acks.withLock { $0.append(offset) } }
}

/// The `kafka` target as the dead-letter target of the core.
@Suite("Kafka dead-letter target", .serialized)
struct KafkaDeadLetterTests {
    @Test func aPoisonedMessageLandsInTheDeadLetterTopicWithItsErrorHeaders() async throws {
        let cluster = try MockCluster(topics: ["orders.dlq": 1])
        defer { cluster.stop() }
        let main = RecordingTarget(holdKind: .permanent) { $0.offset == 11 }
        let dlq = try makeTarget(["brokers": [.scalar(cluster.brokers)], "topic": "orders.dlq"])
        let router = Router(budget: ByteBudget(limit: 1 << 20), logger: quietLogger)
        let settings = DeliverySettings(
            retry: RetryPolicy(initialBackoff: .milliseconds(5), maxBackoff: .milliseconds(50)), deadLetter: "dlq")
        let batching = BatchingPolicy(maxMessages: 100, maxBytes: 1 << 20, maxDelay: .milliseconds(2))
        let mainRunner = TargetRunner(
            name: "main", target: main, batching: batching, lanes: 1, queueCapacity: 100, settings: settings, logger: quietLogger)
        let dlqRunner = TargetRunner(
            name: "dlq", target: dlq, batching: batching, lanes: 1, queueCapacity: 100, settings: settings, logger: quietLogger)
        settings.setRunners(["main": mainRunner, "dlq": dlqRunner])
        router.install(routes: [Route(name: "r", from: ["in"], to: ["main"])], runners: ["main": mainRunner, "dlq": dlqRunner])
        let source = ManualSource()
        let context = SourceContext(name: "in", source: source, router: router, logger: quietLogger)
        let runners = Task {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await mainRunner.run() }
                group.addTask { await dlqRunner.run() }
            }
        }
        let messages = (10...12).map { offset in
            Message(
                key: Array("k\(offset)".utf8), value: Array("v\(offset)".utf8), headers: [Header("h", "1")], channel: "orders",
                timestamp: 1_700_000_000_000, partition: 0, offset: offset)
        }
        try await context.submit(Batch(shard: 0, messages: messages))
        await eventually("the batch is acknowledged, the poisoned message through the dead-letter topic") {
            source.acks.withLock { $0.last } == 12
        }
        mainRunner.closeQueues()
        dlqRunner.closeQueues()
        await runners.value

        #expect(main.written.map(\.offset) == [10, 12])
        let output = try run(["kcat", "-C", "-b", cluster.brokers, "-t", "orders.dlq", "-e", "-o", "beginning", "-f", "%k|%s|%h\n"])
        let lines = output.split(separator: "\n")
        #expect(lines.count == 1)
        let line = String(lines.first ?? "")
        #expect(
            line.hasPrefix(
                "k11|v11|h=1,switchyard-error=held back by the test,switchyard-error-kind=permanent,switchyard-source=in,switchyard-target=main,switchyard-channel=orders,switchyard-partition=0,switchyard-offset=11"
            ), "\(line)")
    }
}
