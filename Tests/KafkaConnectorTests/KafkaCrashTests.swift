import Foundation
import Testing

/// The `switchyard` binary killed with SIGKILL mid-stream, then started again: every message
/// arrives at least once; the test reports how many arrived twice.
@Suite("Kafka crash", .serialized)
struct KafkaCrashTests {
    @Test func killedMidStreamAndRestartedLosesNothing() async throws {
        let cluster = try MockCluster(topics: ["crash": 4])
        defer { cluster.stop() }
        let count = 20_000
        let input = (0..<count).map { "k\($0 % 101):v\($0)" }.joined(separator: "\n") + "\n"
        try run(["kcat", "-P", "-b", cluster.brokers, "-t", "crash", "-K:"], input: input)

        let runtime = try RuntimeProcess("kafka-crash") { output, port in
            """
            apiVersion: switchyard.dev/v1alpha1
            kind: Connector
            metadata: {name: kafka-crash}
            spec:
              sources:
                - name: in
                  kafka:
                    brokers: ["\(cluster.brokers)"]
                    topics: [crash]
                    group: crash
                    commitInterval: 200ms
                    batchSize: 200
                    options: {session.timeout.ms: "3000", heartbeat.interval.ms: "500"}
              targets:
                - name: out
                  file: {path: "\(output)", fsync: false, delay: 50ms}
                  batching: {maxMessages: 100, maxBytes: 1MiB, maxDelay: 5ms}
              routes:
                - from: [in]
                  to: [out]
              delivery: {memoryLimit: 4MiB, drainTimeout: 5s}
              observability: {listen: "127.0.0.1:\(port)", logLevel: warning}
            """
        }

        let first = try runtime.start()
        await eventually("the first run is mid-stream", within: .seconds(60)) { runtime.values().count >= 4000 }
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        let atKill = runtime.values().count
        #expect(atKill < count, "the kill came mid-stream")

        let second = try runtime.start()
        await eventually("every message arrived after the restart", within: .seconds(90)) { Set(runtime.values()).count >= count }
        second.terminate()
        second.waitUntilExit()
        #expect(second.terminationStatus == 0, "exit status; \(runtime.logs)")

        let all = runtime.values()
        let distinct = Set(all)
        let missing = Set((0..<count).map { "v\($0)" }).subtracting(distinct)
        #expect(missing.isEmpty, "\(missing.count) messages lost, e.g. \(missing.sorted().prefix(10))")
        #expect(distinct.count == count, "only the produced values arrived")
        print("crash: killed after \(atKill) lines; \(all.count) lines for \(count) messages, \(all.count - distinct.count) duplicated")
    }
}
