import Foundation
import SwitchyardCore
import Testing
@testable import KafkaConnector
#if canImport(Glibc)
    import Glibc
#endif

/// What `spec.state: paused` does to a pod (the operator scales to zero: SIGTERM), taken while
/// the target is down and every batch is being retried: the process stops within the drain
/// timeout, commits nothing it did not deliver, leaves the group, and a new process of the same
/// group continues from where the first stopped.
@Suite("Kafka pause while the target is down", .serialized)
struct KafkaPauseTests {
    func document(_ cluster: MockCluster, failing: Bool) -> (String, Int) -> String {
        { output, port in
            """
            sources:
              - name: in
                kafka:
                  brokers: ["\(cluster.brokers)"]
                  topics: [paused]
                  group: pause-group
                  commitInterval: 100ms
                  options: {session.timeout.ms: "6000", heartbeat.interval.ms: "500"}
            targets:
              - name: out
                file: {path: "\(output)", fsync: false\(failing ? ", failEvery: 1, failure: target" : "")}
                batching: {maxMessages: 50, maxDelay: 5ms}
            routes:
              - {from: [in], to: [out]}
            delivery: {drainTimeout: 2s, retry: {initialBackoff: 50ms, maxBackoff: 200ms}}
            observability: {listen: "127.0.0.1:\(port)"}
            """
        }
    }

    @Test(.timeLimit(.minutes(2)))
    func pausingWhileTheTargetIsDownAcknowledgesNothingAndResumingDeliversEverything() async throws {
        let cluster = try MockCluster(topics: ["paused": 2])
        defer { cluster.stop() }
        let count = 300
        let input = (0..<count).map { "key-\($0):value-\($0)" }.joined(separator: "\n") + "\n"
        try run(["kcat", "-P", "-b", cluster.brokers, "-t", "paused", "-K:"], input: input)

        let down = try RuntimeProcess("kafka-pause-down", document: document(cluster, failing: true))
        let first = try down.start()
        // The target fails every batch: the route is paused and readiness is off.
        let notReady = await eventually("readiness is off while the target is down", within: .seconds(30)) { down.status("/readyz") == 503 }
        #expect(notReady, "\(down.logs)")
        try await Task.sleep(for: .milliseconds(500))
        let stopping = ContinuousClock.now
        kill(first.processIdentifier, SIGTERM)
        let stopped = await eventually("the paused process exits", within: .seconds(20)) { !first.isRunning }
        #expect(stopped, "\(down.logs)")
        #expect(ContinuousClock.now - stopping < .seconds(15), "stopped within the drain timeout and the client's close")
        #expect(first.terminationStatus == 0, "\(down.logs)")
        #expect(down.values().isEmpty, "the failing target wrote nothing")
        // Nothing was acknowledged early: the group has no committed offset past 0.
        let committed = try committedOffsets(brokers: cluster.brokers, group: "pause-group", topic: "paused", partitions: 2)
        #expect(committed.values.allSatisfy { $0 <= 0 }, "committed \(committed)")

        // Resumed (a new pod of the same group, the target back): everything arrives.
        let up = try RuntimeProcess("kafka-pause-up", document: document(cluster, failing: false))
        let second = try up.start()
        defer { if second.isRunning { kill(second.processIdentifier, SIGKILL) } }
        let delivered = await eventually("every message after resuming", within: .seconds(60)) { Set(up.values()).count >= count }
        #expect(delivered, "\(up.logs)")
        kill(second.processIdentifier, SIGTERM)
        _ = await eventually("the second process exits", within: .seconds(20)) { !second.isRunning }
        #expect(Set(up.values()) == Set((0..<count).map { "value-\($0)" }))
        let after = try committedOffsets(brokers: cluster.brokers, group: "pause-group", topic: "paused", partitions: 2)
        #expect(after.values.reduce(0, +) == Int64(count), "committed \(after)")
    }
}
