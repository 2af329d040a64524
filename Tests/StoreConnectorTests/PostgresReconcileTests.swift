import Foundation
import Testing

/// `switchyard reconcile` on a Kafka source routed to a PostgreSQL target (upsert), through the
/// binary: a bounded copy reconciles as equal (keys written by several records, the last of
/// each winning, and one record the table refuses, dead-lettered and not counted as missing);
/// then a row deleted, a row altered and a row inserted by hand are each named, with the source
/// position of the record that made the row, or the key of the extra row.
// In the serialized suite of the store's target tests: its outage test stops the server.
extension PostgresTargetTests {
    @Test func reconcileNamesMissingDifferingAndExtraRowsByConflictKey() async throws {
        let brokers = try StoreBed.value("SWITCHYARD_KAFKA_BROKERS")
        let postgres = try StoreBed.value("SWITCHYARD_POSTGRES_URL")
        let topic = StoreBed.unique("payments")
        let table = StoreBed.unique("payments").replacingOccurrences(of: "-", with: "_")
        func psql(_ sql: String) throws -> String {
            let result = try StoreBed.run("psql", [postgres, "-X", "-v", "ON_ERROR_STOP=1", "-tA", "-F", "|", "-c", sql])
            #expect(result.status == 0, "psql failed on \(sql): \(result.error)")
            return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        defer { _ = try? psql("DROP TABLE IF EXISTS \(table)") }

        // 300 records over 4 partitions for 200 ids: ids below 100 are written twice, with the
        // Kafka key deciding the partition, so the same id may come from two partitions.
        var lines = (0..<300).map { n in
            "p-\(n)|{\"id\": \(n % 200), \"payer\": \"c\(n % 13)\", \"amount\": \(n).25, \"note\": \"tab\\there\"}"
        }
        lines.append("p-bad|{\"id\": 5000, \"payer\": \"x\", \"amount\": \"not a number\", \"note\": \"\"}")
        let produced = try StoreBed.run("kcat", ["-P", "-b", brokers, "-t", topic, "-K", "|"], input: lines.joined(separator: "\n") + "\n")
        #expect(produced.status == 0, "kcat failed: \(produced.error)")

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(StoreBed.unique("reconcile-pg"))
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        func document(mode: String = "upsert") throws -> String {
            let path = directory.appendingPathComponent("\(mode).yaml").path
            try """
            apiVersion: switchyard.dev/v1alpha1
            kind: Connector
            metadata: {name: payments-warehouse}
            spec:
              sources:
                - name: payments
                  kafka:
                    brokers: ["\(brokers)"]
                    topics: [\(topic)]
                    group: \(topic)
                    options: {session.timeout.ms: "3000", heartbeat.interval.ms: "500"}
              targets:
                - name: warehouse
                  postgres:
                    url: "\(postgres)"
                    table: \(table)
                    mode: \(mode)
                    \(mode == "upsert" ? "conflictColumns: [id]" : "")
                    createTable: true
                    columns: {id: "{{ json.id }}", payer: "{{ json.payer }}", amount: "{{ json.amount }}", doc: "{{ value }}", source: "{{ partition }}/{{ offset }}"}
                    types: {id: bigint, amount: "numeric(10, 2)", doc: jsonb}
                - name: rejected
                  file: {path: "\(directory.appendingPathComponent("dead.ndjson").path)"}
              routes:
                - {from: [payments], to: [warehouse]}
              delivery:
                deadLetter: rejected
                retry: {initialBackoff: 50ms, maxBackoff: 500ms}
              observability: {listen: "127.0.0.1:\(Int.random(in: 20_000...29_999))"}
            """.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
        let path = try document()
        let copy = try await StoreBed.switchyard(["run", "-c", path, "--stop-at", "end"])
        #expect(copy.status == 0, "the bounded copy failed: \(copy.error.suffix(2000))")
        #expect(try psql("SELECT count(*) FROM \(table)") == "200")

        // The complete copy: equal; the refused record is named as unwritable, not missing.
        let equal = try await StoreBed.switchyard(["reconcile", "-c", path, "--output", "json"])
        #expect(equal.status == 0, "\(equal.output) \(equal.error)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(equal.output.utf8)) as? [String: Any])
        #expect(report["equal"] as? Bool == true)
        #expect(report["sourceRecords"] as? Int == 301 && report["expected"] as? Int == 200 && report["held"] as? Int == 200, "\(report)")
        #expect(report["unwritableCount"] as? Int == 1, "\(report)")

        // Tamper: delete the row of id 150, alter the amount of id 170, insert id 7777.
        let deleted = try psql("SELECT source FROM \(table) WHERE id = 150")
        let altered = try psql("SELECT source FROM \(table) WHERE id = 170")
        _ = try psql("DELETE FROM \(table) WHERE id = 150")
        _ = try psql("UPDATE \(table) SET amount = amount + 1 WHERE id = 170")
        _ = try psql("INSERT INTO \(table) (id, payer, amount, doc, source) VALUES (7777, 'hand', 1, '{}', 'none')")

        let different = try await StoreBed.switchyard(["reconcile", "-c", path, "--output", "json"])
        #expect(different.status == 1, "\(different.output) \(different.error)")
        let differentReport = try #require(try JSONSerialization.jsonObject(with: Data(different.output.utf8)) as? [String: Any])
        func named(_ field: String) -> [String] {
            (differentReport[field] as? [[String: Any]] ?? []).map { "\($0["partition"] as? Int ?? -1)/\($0["offset"] as? Int ?? -1)" }
        }
        #expect(differentReport["missingCount"] as? Int == 1 && named("missing") == [deleted], "\(differentReport)")
        #expect(differentReport["differingCount"] as? Int == 1 && named("differing") == [altered], "\(differentReport)")
        #expect(differentReport["extraCount"] as? Int == 1 && differentReport["extra"] as? [String] == ["id=7777"], "\(differentReport)")

        let text = try await StoreBed.switchyard(["reconcile", "-c", path])
        #expect(text.status == 1)
        let position = { (source: String) in "\(topic)[\(source.split(separator: "/")[0])]@\(source.split(separator: "/")[1])" }
        #expect(
            text.output.contains("1 missing (\(position(deleted)))") && text.output.contains("1 differing (\(position(altered)))")
                && text.output.contains("extra: 1 row no source record makes (id=7777)") && text.output.hasSuffix("DIFFERENT"),
            "\(text.output)")

        // Rows of a plain insert have no identity: refused, naming the field.
        let insert = try await StoreBed.switchyard(["reconcile", "-c", try document(mode: "insert")])
        #expect(insert.status == 1)
        #expect(insert.error.contains("spec.targets[0].postgres.mode: rows are compared by their conflict key"), "\(insert.error)")
    }
}
