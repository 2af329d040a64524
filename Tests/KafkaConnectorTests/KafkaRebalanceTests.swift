import Foundation
import SwitchyardCore
import Testing
@testable import KafkaConnector

/// Two members of one group with messages in flight: a second member joins mid-stream, then
/// the first shuts down. Nothing may be lost, with eager and with cooperative assignment.
@Suite("Kafka rebalance", .serialized)
struct KafkaRebalanceTests {
    @Test(arguments: ["range", "cooperative-sticky"])
    func aMemberJoiningAndOneLeavingMidStreamLoseNothing(strategy: String) async throws {
        let topic = "rebalance"
        let cluster = try MockCluster(topics: [topic: 4])
        defer { cluster.stop() }
        let count = 20_000
        let input = (0..<count).map { "k\($0 % 97):v\($0)" }.joined(separator: "\n") + "\n"
        try run(["kcat", "-P", "-b", cluster.brokers, "-t", topic, "-K:"], input: input)

        let group = "rb-\(strategy)"
        let options: Node = [
            "session.timeout.ms": "3000", "heartbeat.interval.ms": "500", "partition.assignment.strategy": .scalar(strategy),
        ]
        func source() throws -> KafkaSource {
            try makeSource(
                memoryLimit: 1 << 20,
                [
                    "brokers": [.scalar(cluster.brokers)], "topics": [.scalar(topic)], "group": .scalar(group),
                    "commitInterval": "100ms", "drainTimeout": "5s", "batchSize": "200", "options": options,
                ])
        }
        // Slow targets keep messages in flight across the rebalances.
        let first = RecordingTarget(delay: .milliseconds(20))
        let a = KafkaPipeline(source: try source(), target: first, budget: 1 << 20)
        await eventually("the first member is consuming") { first.written.count >= 1000 }
        let second = RecordingTarget(delay: .milliseconds(20))
        let b = KafkaPipeline(source: try source(), target: second, budget: 1 << 20)
        await eventually("the second member got partitions") { second.written.count >= 500 }
        // The first member shuts down (SIGTERM): drain, commit, leave the group.
        try await a.shutdown(drain: .seconds(5))
        await eventually("every message was delivered", within: .seconds(60)) {
            Set(first.written.map(\.value) + second.written.map(\.value)).count == count
        }
        try await b.shutdown()

        let all = first.written + second.written
        let distinct = Set(all.map(\.value)).count
        #expect(distinct == count, "no message lost")
        print("rebalance (\(strategy)): \(all.count) deliveries of \(count) messages, \(all.count - distinct) duplicated")
        // Never committed past what was delivered. (The mock cluster refuses commits while the group
        // rebalances, REBALANCE_IN_PROGRESS / ILLEGAL_GENERATION, so commits may lag: that shows
        // up as duplicates above, never as loss.)
        let committed = try committedOffsets(brokers: cluster.brokers, group: group, topic: topic, partitions: 4)
        let ends = Dictionary(grouping: all, by: \.partition).mapValues { $0.map(\.offset).max()! + 1 }
        for (partition, offset) in committed {
            #expect(offset <= (ends[partition] ?? 0), "partition \(partition) committed \(offset), delivered up to \(ends[partition] ?? 0)")
        }
    }
}
