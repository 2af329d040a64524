import Foundation
import Testing
import SwitchyardOperator
#if canImport(Glibc)
    import Glibc
#endif

/// Separate `switchyard run` processes in one consumer group over 16 partitions, scaled
/// 1 → 3 → 1 while the stream runs, one of them killed with SIGKILL: every keyed message ends up
/// written by some process. Duplicates are counted: the killed process's messages after its last
/// commit, and the partitions the mock cluster reports lost during rebalances (docs/kafka.md).
@Suite("Kafka scale-out across processes", .serialized)
struct KafkaScaleOutTests {
    @Test(.timeLimit(.minutes(10)))
    func scalingOneToThreeToOneWithAKillLosesNothing() async throws {
        let partitions = 16
        let cluster = try MockCluster(topics: ["scaled": partitions])
        defer { cluster.stop() }
        // 40,000 in CI; SWITCHYARD_SCALE_COUNT=500000 for the full-size run (docs/scaling.md).
        let count = ProcessInfo.processInfo.environment["SWITCHYARD_SCALE_COUNT"].flatMap { Int($0) } ?? 40_000
        let input = (0..<count).map { "k\($0 % 997):v\($0)" }.joined(separator: "\n") + "\n"
        try run(["kcat", "-P", "-b", cluster.brokers, "-t", "scaled", "-K:"], input: input)
        func replica(_ name: String) throws -> RuntimeProcess {
            try RuntimeProcess("kafka-scale-\(name)") { output, port in
                """
                sources:
                  - name: in
                    kafka:
                      brokers: ["\(cluster.brokers)"]
                      topics: [scaled]
                      group: scaled-group
                      commitInterval: 200ms
                      drainTimeout: 5s
                      batchSize: 200
                      options: {session.timeout.ms: "3000", heartbeat.interval.ms: "500", partition.assignment.strategy: cooperative-sticky}
                targets:
                  - name: out
                    file: {path: "\(output)", fsync: false, delay: 40ms}
                    batching: {maxMessages: 200, maxBytes: 1MiB, maxDelay: 5ms}
                routes:
                  - {from: [in], to: [out]}
                delivery: {memoryLimit: 2MiB, drainTimeout: 10s}
                observability: {listen: "127.0.0.1:\(port)"}
                """
            }
        }
        let replicas = try ["a", "b", "c"].map(replica)
        func total() -> Int { replicas.reduce(0) { $0 + $1.values().count } }
        func all() -> [String] { replicas.flatMap { $0.values() } }

        // One pod.
        let a = try replicas[0].start()
        #expect(await eventually("the first pod is mid-stream", within: .seconds(30)) { total() >= 4000 }, "\(replicas[0].logs)")
        // Scaled to three, while the first pod is mid-stream.
        let atScaleUp = Set(all()).count
        let b = try replicas[1].start()
        let c = try replicas[2].start()
        defer { for process in [a, b, c] where process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        #expect(
            await eventually("the new pods take partitions", within: .seconds(60)) {
                replicas[1].values().count >= 500 && replicas[2].values().count >= 500
            }, "\(replicas[1].logs)\n\(replicas[2].logs)")
        #expect(atScaleUp < count, "scaled up mid-stream: \(atScaleUp) of \(count) written when the new pods started")
        // One of them is killed.
        kill(b.processIdentifier, SIGKILL)
        _ = await eventually("the killed pod is gone", within: .seconds(10)) { !b.isRunning }
        let beforeScaleDown = total()
        #expect(await eventually("the others continue", within: .seconds(60)) { total() >= beforeScaleDown + 3000 })
        // Scaled back to one: a graceful stop drains and leaves the group.
        c.terminate()
        _ = await eventually("the stopped pod exits", within: .seconds(30)) { !c.isRunning }
        #expect(c.terminationStatus == 0, "\(replicas[2].logs)")
        #expect(Set(all()).count < count, "scaled down mid-stream")

        let expected = Set((0..<count).map { "v\($0)" })
        let complete = await eventually("every message was written by some pod", within: .seconds(120 + count / 2000)) {
            Set(all()).isSuperset(of: expected)
        }
        #expect(complete, "\(replicas[0].logs)")
        a.terminate()
        _ = await eventually("the last pod exits", within: .seconds(30)) { !a.isRunning }
        #expect(a.terminationStatus == 0, "\(replicas[0].logs)")
        let written = all()
        let missing = expected.subtracting(written)
        #expect(missing.isEmpty, "\(missing.count) messages lost, e.g. \(missing.sorted().prefix(10))")
        let duplicates = written.count - Set(written).count
        // Each pod holds at most its byte budget in flight (2 MiB: under 20,000 of these
        // messages); four group changes can each deliver at most that again.
        #expect(duplicates <= 4 * 20_000, "duplicates: \(duplicates)")
        print(
            "scale-out 1 -> 3 -> 1 with a kill -9 over \(partitions) partitions: a wrote \(replicas[0].values().count), b \(replicas[1].values().count) (killed), c \(replicas[2].values().count); \(duplicates) of \(count) duplicated"
        )
    }

    @Test(.timeLimit(.minutes(2)))
    func aMemberBeyondThePartitionCountIsReadyAndSaysItIsIdle() async throws {
        let cluster = try MockCluster(topics: ["single": 1])
        defer { cluster.stop() }
        func replica(_ name: String) throws -> RuntimeProcess {
            try RuntimeProcess("kafka-idle-\(name)") { output, port in
                """
                sources:
                  - name: in
                    kafka:
                      brokers: ["\(cluster.brokers)"]
                      topics: [single]
                      group: idle-group
                      options: {session.timeout.ms: "3000", heartbeat.interval.ms: "500"}
                targets:
                  - name: out
                    file: {path: "\(output)", fsync: false}
                routes:
                  - {from: [in], to: [out]}
                observability: {listen: "127.0.0.1:\(port)"}
                """
            }
        }
        let replicas = try [replica("a"), replica("b")]
        let processes = try replicas.map { try $0.start() }
        defer { for process in processes where process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        func readyz(_ replica: RuntimeProcess) -> String {
            (try? run(["curl", "-s", "-m", "2", "http://127.0.0.1:\(replica.port)/readyz"], recordFailure: false)) ?? ""
        }
        // One partition, two members: both ready, exactly one says it holds nothing.
        let settled = await eventually("both ready, one idle", within: .seconds(60)) {
            let bodies = replicas.map(readyz)
            return replicas.allSatisfy { $0.status("/readyz") == 200 }
                && bodies.filter { $0.contains("note: source in holds no partition") }.count == 1
        }
        #expect(settled, "\(replicas.map(readyz))")
        #expect(replicas.map(readyz).allSatisfy { $0.hasPrefix("ready\n") })

        // What the operator reads for status.idleReplicas: each pod's /status, as pods of a
        // Deployment on this host would be found.
        let pods: JSON = .object([
            "items": .array(
                replicas.map { replica in
                    [
                        "metadata": ["name": .string("orders-\(replica.port)")],
                        "spec": ["containers": [["name": "connector", "ports": [["name": "http", "containerPort": .int(replica.port)]]]]],
                        "status": ["phase": "Running", "podIP": "127.0.0.1"],
                    ]
                })
        ])
        let count = await MemberProbe().count(pods: pods)
        #expect(count == MemberProbe.Count(running: 2, answered: 2, idle: 1), "\(count)")
    }
}
