import Foundation
import SwitchyardCore
import Testing
@testable import KafkaConnector

/// The `kafka` source against a mock cluster of its own, over TCP.
@Suite("Kafka source", .serialized)
struct KafkaSourceTests {
    @Test func keyedMessagesProducedWithKcatArriveExactlyOnceWithKeyHeadersAndTimestamp() async throws {
        let cluster = try MockCluster(topics: ["orders": 4])
        defer { cluster.stop() }
        let count = 2000
        let before = currentMillis()
        let input = (0..<count).map { "key-\($0):value-\($0)" }.joined(separator: "\n") + "\n"
        try run(["kcat", "-P", "-b", cluster.brokers, "-t", "orders", "-K:", "-H", "origin=kcat", "-H", "trace=abc"], input: input)
        let after = currentMillis()

        let source = try makeSource([
            "brokers": [.scalar(cluster.brokers)], "topics": ["orders"], "group": "e2e",
            "commitInterval": "200ms", "options": fastGroup,
        ])
        let target = RecordingTarget()
        let pipeline = KafkaPipeline(source: source, target: target)
        await eventually("every message arrived") { target.written.count >= count }
        #expect(source.health == .up)
        try await pipeline.shutdown()

        let written = target.written
        #expect(written.count == count, "exactly once: no duplicates")
        #expect(Set(written.map { String(decoding: $0.value, as: UTF8.self) }).count == count)
        for message in written {
            let value = String(decoding: message.value, as: UTF8.self)
            let number = value.dropFirst("value-".count)
            #expect(message.key.map { String(decoding: $0, as: UTF8.self) } == "key-\(number)")
            #expect(message.headers == [Header("origin", "kcat"), Header("trace", "abc")])
            #expect(message.channel == "orders")
            #expect(message.timestamp >= before - 1000 && message.timestamp <= after + 1000, "the producer's timestamp is kept")
        }
        // Within a partition the offsets arrive in order, and every partition received some.
        let byPartition = Dictionary(grouping: written, by: \.partition)
        #expect(byPartition.count == 4)
        for (_, messages) in byPartition {
            #expect(messages.map(\.offset) == messages.map(\.offset).sorted())
        }
        // Shutdown committed everything that was acknowledged: the next offset of each partition.
        let committed = try committedOffsets(brokers: cluster.brokers, group: "e2e", topic: "orders", partitions: 4)
        let expected = byPartition.mapValues { $0.map(\.offset).max()! + 1 }
        #expect(committed == expected)
    }

    @Test func aMessageHeldBackByTheTargetHoldsTheCommittedOffsetBeforeIt() async throws {
        let cluster = try MockCluster(topics: ["held": 1])
        defer { cluster.stop() }
        let input = (0..<100).map { "value-\($0)" }.joined(separator: "\n") + "\n"
        try run(["kcat", "-P", "-b", cluster.brokers, "-t", "held"], input: input)

        let source = try makeSource([
            "brokers": [.scalar(cluster.brokers)], "topics": ["held"], "group": "held-group",
            "commitInterval": "100ms", "options": fastGroup,
        ])
        let target = RecordingTarget { $0.offset == 40 }
        let pipeline = KafkaPipeline(source: source, target: target)
        await eventually("every other message was written") { target.written.count == 99 }
        // Several commit intervals pass: the committed offset is 40 (the held message is next).
        var committed: [Int32: Int64] = [:]
        await eventually("offset 40 is committed") {
            committed = (try? committedOffsets(brokers: cluster.brokers, group: "held-group", topic: "held", partitions: 1)) ?? [:]
            return committed[0] == 40
        }
        try await Task.sleep(for: .milliseconds(500))
        #expect(try committedOffsets(brokers: cluster.brokers, group: "held-group", topic: "held", partitions: 1) == [0: 40])
        try await pipeline.shutdown(drain: .milliseconds(300))
        // The shutdown commit does not move past the held message either.
        #expect(try committedOffsets(brokers: cluster.brokers, group: "held-group", topic: "held", partitions: 1) == [0: 40])

        // A new member of the group starts again at the held message.
        let again = try makeSource([
            "brokers": [.scalar(cluster.brokers)], "topics": ["held"], "group": "held-group", "options": fastGroup,
        ])
        let second = RecordingTarget()
        let restarted = KafkaPipeline(source: again, target: second)
        await eventually("the rest was delivered again") { second.written.count == 60 }
        try await restarted.shutdown()
        #expect(second.written.first?.offset == 40)
        #expect(try committedOffsets(brokers: cluster.brokers, group: "held-group", topic: "held", partitions: 1) == [0: 100])
    }
}
