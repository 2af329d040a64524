import Foundation
import SwitchyardCore
import Testing
#if canImport(Glibc)
    import Glibc
#endif

/// `switchyard_source_lag_messages` as a scaler reads it: exact at each scrape, 0 once
/// everything is acknowledged (whatever the commit interval), never a made-up value.
@Suite("Kafka lag metric", .serialized)
struct KafkaLagMetricTests {
    /// The lag series of `/metrics`: partition to value.
    func lag(_ process: RuntimeProcess) -> [String: Double] {
        let text = (try? run(["curl", "-s", "-m", "2", "http://127.0.0.1:\(process.port)/metrics"], recordFailure: false)) ?? ""
        var result: [String: Double] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix("switchyard_source_lag_messages{") {
            guard let start = line.range(of: "partition=\""), let end = line[start.upperBound...].firstIndex(of: "\""),
                let value = Double(line.split(separator: " ").last ?? "")
            else { continue }
            result[String(line[start.upperBound..<end])] = value
        }
        return result
    }

    @Test(.timeLimit(.minutes(2)))
    func theLagFollowsAcknowledgementsAndIsZeroWhenEverythingIsAcknowledged() async throws {
        let cluster = try MockCluster(topics: ["lagged": 4])
        defer { cluster.stop() }
        let count = 1200
        let input = (0..<count).map { "key-\($0):value-\($0)" }.joined(separator: "\n") + "\n"
        try run(["kcat", "-P", "-b", cluster.brokers, "-t", "lagged", "-K:"], input: input)
        // A commit interval far longer than the test: the lag must not wait for a commit.
        let process = try RuntimeProcess("kafka-lag") { output, port in
            """
            sources:
              - name: in
                kafka:
                  brokers: ["\(cluster.brokers)"]
                  topics: [lagged]
                  group: lag-group
                  commitInterval: 120s
                  batchSize: 20
                  options: {session.timeout.ms: "6000", heartbeat.interval.ms: "500"}
            targets:
              - name: out
                file: {path: "\(output)", fsync: false, delay: 200ms}
                batching: {maxMessages: 20, maxDelay: 5ms}
            routes:
              - {from: [in], to: [out]}
            observability: {listen: "127.0.0.1:\(port)"}
            """
        }
        let runtime = try process.start()
        defer { kill(runtime.processIdentifier, SIGKILL) }
        // While the slow target works through the topic, every partition reports a lag, and
        // the total never exceeds what was produced.
        let midway = await eventually("a lag is reported for every partition while consuming", within: .seconds(30)) {
            let now = lag(process)
            return now.count == 4 && now.values.reduce(0, +) > 0 && process.values().count < count
        }
        #expect(midway, "\(process.logs)")
        #expect(lag(process).values.reduce(0, +) <= Double(count))
        await eventually("every message was written", within: .seconds(60)) { process.values().count >= count }
        let settled = await eventually("the lag is 0 on every partition", within: .seconds(5)) {
            let now = lag(process)
            return now.count == 4 && now.values.allSatisfy { $0 == 0 }
        }
        #expect(settled, "lag \(lag(process)); \(process.logs)")
        #expect(process.values().count == count)
    }
}
