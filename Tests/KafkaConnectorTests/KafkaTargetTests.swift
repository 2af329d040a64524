import Foundation
import SwitchyardCore
import Testing
@testable import KafkaConnector

/// The `kafka` target against a mock cluster of its own, read back with kcat.
@Suite("Kafka target", .serialized)
struct KafkaTargetTests {
    @Test func writesToATopicFromATemplateWithKeysHeadersTimestampsAndPartitions() async throws {
        let cluster = try MockCluster(topics: ["mirror.orders": 2])
        defer { cluster.stop() }
        let target = try makeTarget([
            "brokers": [.scalar(cluster.brokers)], "topic": "mirror.{{ channel }}", "partition": "keep",
            "headers": ["via": "switchyard"],
        ])
        try await target.open()
        let messages = (0..<10).map { index in
            Message(
                key: Array("k-\(index)".utf8), value: Array("v-\(index)".utf8), headers: [Header("h", "x-\(index)")],
                channel: "orders", timestamp: 1_700_000_000_000 + Int64(index), partition: Int32(index % 2), offset: Int64(index))
        }
        let result = try await target.write(messages)
        #expect(result.failures.isEmpty)
        await target.close()

        let output = try run([
            "kcat", "-C", "-b", cluster.brokers, "-t", "mirror.orders", "-e", "-o", "beginning", "-f", "%p|%k|%T|%h|%s\n",
        ])
        let lines = output.split(separator: "\n").map { $0.split(separator: "|", omittingEmptySubsequences: false).map(String.init) }
        #expect(lines.count == 10)
        for fields in lines where fields.count == 5 {
            let index = Int(fields[4].dropFirst(2))!
            #expect(fields[0] == String(index % 2))
            #expect(fields[1] == "k-\(index)")
            #expect(fields[2] == String(1_700_000_000_000 + index))
            #expect(fields[3] == "h=x-\(index),via=switchyard")
        }
    }

    @Test func aMessageTooLargeIsAPermanentFailureOfThatMessageOnly() async throws {
        let cluster = try MockCluster(topics: ["big": 1])
        defer { cluster.stop() }
        let target = try makeTarget([
            "brokers": [.scalar(cluster.brokers)], "topic": "big", "options": ["message.max.bytes": "2000"],
        ])
        try await target.open()
        let messages = [
            Message(value: Array("small".utf8)),
            Message(value: Array(repeating: 0x61, count: 5000)),
            Message(value: Array("small too".utf8)),
        ]
        let result = try await target.write(messages)
        #expect(result.failures.map(\.index) == [1])
        #expect(result.failures.first?.error.kind == .permanent)
        #expect(result.failures.first?.error.message.contains("MSG_SIZE_TOO_LARGE") == true)
        await target.close()
        let output = try run(["kcat", "-C", "-b", cluster.brokers, "-t", "big", "-e", "-o", "beginning", "-f", "%s\n"])
        #expect(output == "small\nsmall too\n")
    }

    @Test func anUnreachableClusterFailsToOpenWithARetriableError() async throws {
        let target = try makeTarget(["brokers": ["127.0.0.1:1"], "topic": "t", "options": ["socket.connection.setup.timeout.ms": "1000"]])
        await #expect(throws: ConnectorError.self) { try await target.open() }
        #expect(target.health != .up)
    }
}
