import Foundation
import Testing

/// The `switchyard` binary consuming from the mock cluster while the cluster misbehaves:
/// the broker goes down and comes back, and fetches and offset commits fail for a while.
/// Readiness follows the broker, and every message arrives.
@Suite("Kafka broker trouble", .serialized)
struct KafkaBrokerTroubleTests {
    @Test func aBrokerDownAndFailingRequestsLoseNothingAndReadinessFollows() async throws {
        let cluster = try MockCluster(topics: ["trouble": 4], control: true)
        defer { cluster.stop() }
        // 40,000 messages before the outage and 10,000 after it; the target writes at most
        // 2,000 a second (batches of 100, 50 ms each), so the broker goes down mid-stream
        // whatever the machine's speed, and the stream goes on after it came back.
        let count = 50_000
        let before = 40_000
        func produce(_ range: Range<Int>) throws {
            let input = range.map { "k\($0 % 89):v\($0)" }.joined(separator: "\n") + "\n"
            try run(["kcat", "-P", "-b", cluster.brokers, "-t", "trouble", "-K:"], input: input)
        }
        try produce(0..<before)
        let runtime = try RuntimeProcess("kafka-trouble") { output, port in
            """
            apiVersion: switchyard.dev/v1alpha1
            kind: Connector
            metadata: {name: kafka-trouble}
            spec:
              sources:
                - name: in
                  kafka:
                    brokers: ["\(cluster.brokers)"]
                    topics: [trouble]
                    group: trouble
                    commitInterval: 200ms
                    batchSize: 200
                    options: {session.timeout.ms: "6000", heartbeat.interval.ms: "500", reconnect.backoff.max.ms: "500"}
              targets:
                - name: out
                  file: {path: "\(output)", fsync: false, delay: 50ms}
                  batching: {maxMessages: 100, maxBytes: 1MiB, maxDelay: 5ms}
              routes:
                - from: [in]
                  to: [out]
              delivery: {memoryLimit: 4MiB, drainTimeout: 5s}
              observability: {listen: "127.0.0.1:\(port)", logLevel: info, logFormat: json}
            """
        }
        let process = try runtime.start()
        await eventually("the runtime is ready", within: .seconds(30)) { runtime.status("/readyz") == 200 }
        await eventually("messages flow", within: .seconds(30)) { runtime.values().count >= 2000 }

        try cluster.inject("down 1")
        await eventually("readiness goes off while the only broker is down", within: .seconds(30)) { runtime.status("/readyz") == 503 }
        #expect(runtime.status("/livez") == 200, "the process stays alive")
        let duringOutage = runtime.values().count
        #expect(duringOutage < before, "the outage came mid-stream")

        try cluster.inject("up 1")
        await eventually("readiness comes back with the broker", within: .seconds(60)) { runtime.status("/readyz") == 200 }
        try produce(before..<count)
        // Fetches fail with NOT_LEADER_OR_FOLLOWER (6) and commits with
        // COORDINATOR_NOT_AVAILABLE (15) for a while: retried, never skipped.
        try cluster.inject("errors 1 30 6")
        try cluster.inject("errors 8 10 15")
        let expected = Set((0..<count).map { "v\($0)" })
        await eventually("every message arrived", within: .seconds(120)) { Set(runtime.values()).isSuperset(of: expected) }

        process.terminate()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "exit status after SIGTERM; \(runtime.logs)")
        let all = runtime.values()
        let missing = expected.subtracting(all)
        #expect(missing.isEmpty, "\(missing.count) messages lost, e.g. \(missing.sorted().prefix(10)); \(runtime.logs)")
        print(
            "broker trouble: \(all.count) lines for \(count) messages, \(all.count - Set(all).count) duplicated; \(duringOutage) written when the broker went down"
        )
    }
}
