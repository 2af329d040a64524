import Foundation
import Testing
import SwitchyardCore

extension PostgresTargetTests {
    /// PostgreSQL is stopped mid-stream and started again: readiness goes off meanwhile, and
    /// every row arrives exactly once (upsert).
    @Test func postgresStoppedMidStreamLosesNothing() throws {
        let table = try makeTable("id bigint PRIMARY KEY, doc jsonb")
        let httpPort = Int.random(in: 20_000...29_999)
        let document = """
            apiVersion: switchyard.dev/v1alpha1
            kind: Connector
            metadata: {name: postgres-outage}
            spec:
              sources:
                - name: gen
                  generate: {count: 15000, rate: 1500, batchSize: 100, value: '{"id": {{ offset }}}'}
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
              observability: {listen: "127.0.0.1:\(httpPort)"}
            """
        let running = try StoreBed.RunningDocument(document)
        #expect(StoreBed.poll(timeout: 10) { (Int((try? psql("SELECT count(*) FROM \(table)")) ?? "") ?? 0) > 300 })
        try StoreBed.services("stop", "postgres")
        var restarted = false
        defer { if !restarted { try? StoreBed.services("start", "postgres") } }
        #expect(StoreBed.poll(timeout: 10) { StoreBed.httpStatus(port: httpPort, path: "/readyz") == 503 }, "readiness never went off: \(running.log.suffix(1500))")
        try StoreBed.services("start", "postgres")
        restarted = true
        let status = running.wait(timeout: 90)
        #expect(status == 0, "switchyard exited \(String(describing: status)): \(running.log.suffix(2000))")
        #expect(try psql("SELECT count(*), min(id), max(id) FROM \(table)") == "15000|0|14999")
    }
}
