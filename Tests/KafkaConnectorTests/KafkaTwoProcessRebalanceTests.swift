import Foundation
import Testing

/// Two `switchyard` processes in one consumer group: the second starts while the first is
/// mid-stream (a rebalance with messages in flight), then the first stops with SIGTERM (a
/// second rebalance while it drains). Every message is written by one of them. Duplicates are
/// expected and reported: the mock cluster refuses commits while a rebalance is in progress
/// (REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION) and reports cooperative assignments as lost,
/// and a lost partition is never committed, so its messages are delivered again.
@Suite("Kafka rebalance across processes", .serialized)
struct KafkaTwoProcessRebalanceTests {
    @Test(arguments: ["range", "cooperative-sticky"])
    func aSecondProcessJoiningAndTheFirstStoppingLoseNothing(strategy: String) async throws {
        let cluster = try MockCluster(topics: ["shared": 6])
        defer { cluster.stop() }
        let count = 30_000
        let input = (0..<count).map { "k\($0 % 101):v\($0)" }.joined(separator: "\n") + "\n"
        try run(["kcat", "-P", "-b", cluster.brokers, "-t", "shared", "-K:"], input: input)
        func document(_ name: String) throws -> RuntimeProcess {
            try RuntimeProcess("kafka-\(name)-\(strategy)") { output, port in
                """
                sources:
                  - name: in
                    kafka:
                      brokers: ["\(cluster.brokers)"]
                      topics: [shared]
                      group: shared-\(strategy)
                      commitInterval: 200ms
                      drainTimeout: 5s
                      batchSize: 200
                      options: {session.timeout.ms: "3000", heartbeat.interval.ms: "500", partition.assignment.strategy: \(strategy)}
                targets:
                  - name: out
                    file: {path: "\(output)", fsync: false, delay: 50ms}
                    batching: {maxMessages: 200, maxBytes: 1MiB, maxDelay: 5ms}
                routes:
                  - from: [in]
                    to: [out]
                delivery: {memoryLimit: 4MiB, drainTimeout: 10s}
                observability: {listen: "127.0.0.1:\(port)", logLevel: info, logFormat: json}
                """
            }
        }
        let first = try document("first")
        let second = try document("second")
        let firstProcess = try first.start()
        await eventually("the first process is mid-stream", within: .seconds(30)) { first.values().count >= 3000 }
        let secondProcess = try second.start()
        await eventually("the second process takes partitions", within: .seconds(40)) { second.values().count >= 1000 }
        firstProcess.terminate()
        firstProcess.waitUntilExit()
        #expect(firstProcess.terminationStatus == 0, "the first process drained and exited 0; \(first.logs)")
        let fromFirst = first.values().count
        #expect(Set(first.values()).count < count, "the first process stopped mid-stream")

        let expected = Set((0..<count).map { "v\($0)" })
        await eventually("every message was written by one of the two", within: .seconds(90)) {
            Set(first.values() + second.values()).isSuperset(of: expected)
        }
        secondProcess.terminate()
        secondProcess.waitUntilExit()
        #expect(secondProcess.terminationStatus == 0, "\(second.logs)")
        let all = first.values() + second.values()
        let missing = expected.subtracting(all)
        #expect(missing.isEmpty, "\(missing.count) messages lost, e.g. \(missing.sorted().prefix(10))")
        print(
            "rebalance across processes (\(strategy)): first wrote \(fromFirst), second \(second.values().count); \(all.count - Set(all).count) duplicated"
        )
    }
}
