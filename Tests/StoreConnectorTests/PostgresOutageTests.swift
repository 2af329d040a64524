import Foundation
import Testing
import SwitchyardCore

extension PostgresTargetTests {
    /// PostgreSQL is stopped mid-stream and started again: readiness goes off meanwhile, and
    /// after a graceful stop every acknowledged message is in the table (upsert: exactly once).
    @Test func postgresStoppedMidStreamLosesNothing() async throws {
        let table = try makeTable("id bigint PRIMARY KEY, doc jsonb")
        let httpPort = Int.random(in: 20_000...29_999)
        let document = """
            apiVersion: switchyard.dev/v1alpha1
            kind: Connector
            metadata: {name: postgres-outage}
            spec:
              sources:
                - name: gen
                  generate: {count: 1000000, rate: 1000, batchSize: 50, value: '{"id": {{ offset }}}'}
              targets:
                - name: db
                  postgres:
                    url: "\(url)?connect_timeout=2"
                    table: \(table)
                    mode: upsert
                    conflictColumns: [id]
                    columns: {id: "{{ offset }}", doc: "{{ value }}"}
              routes:
                - {from: [gen], to: [db]}
              delivery:
                retry: {initialBackoff: 50ms, maxBackoff: 500ms}
              observability: {listen: "127.0.0.1:\(httpPort)", logFormat: json}
            """
        let running = try StoreBed.RunningDocument(document)
        #expect(await StoreBed.poll(timeout: 10) { (Int((try? psql("SELECT count(*) FROM \(table)")) ?? "") ?? 0) > 300 })
        try StoreBed.services("stop", "postgres")
        var restarted = false
        defer { if !restarted { try? StoreBed.services("start", "postgres") } }
        #expect(running.process.isRunning)
        #expect(
            await StoreBed.poll(timeout: 10) { StoreBed.httpStatus(port: httpPort, path: "/readyz") == 503 },
            "readiness never went off: \(running.log.suffix(1500))")
        try StoreBed.services("start", "postgres")
        restarted = true
        #expect(
            await StoreBed.poll(timeout: 30) { StoreBed.httpStatus(port: httpPort, path: "/readyz") == 200 },
            "readiness never came back: \(running.log.suffix(1500))")
        let before = Int(try psql("SELECT count(*) FROM \(table)")) ?? 0
        #expect(
            await StoreBed.poll(timeout: 10) { (Int((try? psql("SELECT count(*) FROM \(table)")) ?? "") ?? 0) > before + 100 },
            "no rows written after the restart")
        running.process.interrupt()
        let status = await running.wait(timeout: 30)
        #expect(status == 0, "switchyard exited \(String(describing: status)): \(running.log.suffix(2000))")
        // Every acknowledged message (the generator logs the count on close) is a row.
        let closed = running.log.split(separator: "\n").last { $0.contains("\"generator closed\"") } ?? ""
        let acknowledged =
            closed.firstRange(of: "\"acknowledged\":\"").map { range in Int(closed[range.upperBound...].prefix { $0.isNumber }) ?? 0 } ?? 0
        #expect(acknowledged > before)
        #expect(try psql("SELECT count(*) FROM \(table) WHERE id < \(acknowledged)") == "\(acknowledged)")
    }
}
