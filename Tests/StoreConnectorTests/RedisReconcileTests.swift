import Foundation
import Testing

/// `switchyard reconcile` on a Kafka source routed to a Redis target (`command: set`), through
/// the binary: a bounded copy reconciles as equal (keys written by several records, the last of
/// each winning); then a key deleted, a key altered and a key set by hand under the prefix are
/// each named.
// In the serialized suite of the store's target tests: its outage test stops the server.
extension RedisTargetTests {
    @Test func reconcileNamesMissingDifferingAndExtraKeys() async throws {
        let brokers = try StoreBed.value("SWITCHYARD_KAFKA_BROKERS")
        let redisPort = try StoreBed.value("SWITCHYARD_REDIS_PORT")
        let topic = StoreBed.unique("sessions")
        let prefix = StoreBed.unique("session")
        let database = "5"
        func redis(_ arguments: String...) throws -> String {
            try StoreBed.run("redis-cli", ["-h", "127.0.0.1", "-p", redisPort, "-n", database, "--raw"] + arguments).output
        }
        // 250 records over 4 partitions for 150 keys (ids below 100 written twice).
        let lines = (0..<250).map { n in "s-\(n)|{\"id\": \(n % 150), \"user\": \"u\(n)\"}" }
        let produced = try StoreBed.run("kcat", ["-P", "-b", brokers, "-t", topic, "-K", "|"], input: lines.joined(separator: "\n") + "\n")
        #expect(produced.status == 0, "kcat failed: \(produced.error)")

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(StoreBed.unique("reconcile-redis"))
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        func document(command: String = "set") throws -> String {
            let path = directory.appendingPathComponent("\(command).yaml").path
            try """
            apiVersion: switchyard.dev/v1alpha1
            kind: Connector
            metadata: {name: sessions-cache}
            spec:
              sources:
                - name: sessions
                  kafka:
                    brokers: ["\(brokers)"]
                    topics: [\(topic)]
                    group: \(topic)
                    options: {session.timeout.ms: "3000", heartbeat.interval.ms: "500"}
              targets:
                - name: cache
                  redis: {url: "redis://127.0.0.1:\(redisPort)/\(database)", command: \(command), key: "\(prefix):{{ json.id }}", value: "{{ json.user }}@{{ partition }}/{{ offset }}"\(command == "lpush" ? "" : "")}
              routes:
                - {from: [sessions], to: [cache]}
              observability: {listen: "127.0.0.1:\(Int.random(in: 20_000...29_999))"}
            """.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
        let path = try document()
        let copy = try await StoreBed.switchyard(["run", "-c", path, "--stop-at", "end"])
        #expect(copy.status == 0, "the bounded copy failed: \(copy.error.suffix(2000))")
        defer {
            _ = try? StoreBed.run(
                "sh",
                [
                    "-c",
                    "redis-cli -h 127.0.0.1 -p \(redisPort) -n \(database) --scan --pattern '\(prefix):*' | xargs -r redis-cli -h 127.0.0.1 -p \(redisPort) -n \(database) del",
                ])
        }

        let equal = try await StoreBed.switchyard(["reconcile", "-c", path, "--output", "json"])
        #expect(equal.status == 0, "\(equal.output) \(equal.error)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(equal.output.utf8)) as? [String: Any])
        #expect(report["equal"] as? Bool == true)
        #expect(report["sourceRecords"] as? Int == 250 && report["expected"] as? Int == 150 && report["held"] as? Int == 150, "\(report)")

        // Tamper: delete key 120, alter key 130, set a key by hand under the prefix.
        let deleted = try redis("GET", "\(prefix):120")
        let altered = try redis("GET", "\(prefix):130")
        _ = try redis("DEL", "\(prefix):120")
        _ = try redis("SET", "\(prefix):130", "tampered")
        _ = try redis("SET", "\(prefix):hand", "x")
        let different = try await StoreBed.switchyard(["reconcile", "-c", path, "--output", "json"])
        #expect(different.status == 1, "\(different.output) \(different.error)")
        let differentReport = try #require(try JSONSerialization.jsonObject(with: Data(different.output.utf8)) as? [String: Any])
        func named(_ field: String) -> [String] {
            (differentReport[field] as? [[String: Any]] ?? []).map { "\($0["partition"] as? Int ?? -1)/\($0["offset"] as? Int ?? -1)" }
        }
        // The value names the record that wrote it: partition/offset after the '@'.
        let position = { (value: String) in String(value.split(separator: "@").last ?? "") }
        #expect(
            differentReport["missingCount"] as? Int == 1 && named("missing") == [position(deleted)], "\(differentReport) deleted \(deleted)"
        )
        #expect(
            differentReport["differingCount"] as? Int == 1 && named("differing") == [position(altered)],
            "\(differentReport) altered \(altered)")
        #expect(
            differentReport["extraCount"] as? Int == 1 && differentReport["extra"] as? [String] == ["\(prefix):hand"], "\(differentReport)")
        let text = try await StoreBed.switchyard(["reconcile", "-c", path])
        #expect(text.status == 1)
        #expect(
            text.output.contains("extra: 1 key no source record makes (\(prefix):hand)") && text.output.hasSuffix("DIFFERENT"),
            "\(text.output)")

        // A list keeps no value per key: refused, naming the field.
        let list = try await StoreBed.switchyard(["reconcile", "-c", try document(command: "lpush")])
        #expect(list.status == 1)
        #expect(list.error.contains("spec.targets[0].redis.command: reconcile compares keys written by set or hset"), "\(list.error)")
    }
}
