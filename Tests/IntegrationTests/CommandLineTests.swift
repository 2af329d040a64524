import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite struct CommandLineTests {
    @Test func everyExampleDocumentInConfigsIsValid() throws {
        let configs = Paths.repository.appendingPathComponent("configs")
        let files = try FileManager.default.contentsOfDirectory(atPath: configs.path).filter { $0.hasSuffix(".yaml") }.sorted()
        #expect(!files.isEmpty)
        let directory = Paths.temporaryDirectory()
        let process = try SwitchyardProcess(arguments: ["validate"] + files.map { configs.appendingPathComponent($0).path }, directory: directory)
        #expect(process.waitForExit(timeout: 30) == 0, "\(process.log)")
        #expect(process.output.components(separatedBy: ": valid").count - 1 == files.count)
    }

    @Test func validateReportsEveryProblemWithPathAndLineAndExitsNonZero() throws {
        let directory = Paths.temporaryDirectory()
        let config = directory.appendingPathComponent("bad.yaml")
        try """
        sources:
          - name: numbers
            generate: {count: lots}
        targets:
          - name: archive
            file: {colour: blue}
        routes:
          - {from: [numbers], to: [archiv]}
        delivery: {drainTimeout: 10}
        """.write(to: config, atomically: true, encoding: .utf8)
        let process = try SwitchyardProcess(arguments: ["validate", config.path], directory: directory)
        #expect(process.waitForExit(timeout: 30) == 1)
        let log = process.log
        #expect(log.contains("bad.yaml:3: spec.sources[0].generate.count: expected an integer, found 'lots'"), "\(log)")
        #expect(log.contains("bad.yaml:6: spec.targets[0].file.colour: unknown field 'colour'"), "\(log)")
        #expect(log.contains("spec.targets[0].file.path: required field is missing"), "\(log)")
        #expect(log.contains("bad.yaml:9: spec.delivery.drainTimeout: expected a duration"), "\(log)")
    }

    /// A RabbitMQ source numbers its positions per connection: an object key, Redis key or
    /// upsert key made from offsets without the session would let replicas and restarts
    /// overwrite each other. Refused, with the field's path and line; the same keys with the
    /// session, or fed by Kafka (whose offsets are durable), are valid.
    @Test func keysMadeFromOffsetsWithoutTheSessionAreRefusedForSourcesWhosePositionsRestart() throws {
        let directory = Paths.temporaryDirectory()
        func document(_ sourceKind: String, session: Bool) -> String {
            let source = sourceKind == "rabbitmq"
                ? "rabbitmq: {url: \"amqp://127.0.0.1:5672/%2f\", queue: orders}"
                : "kafka: {brokers: [\"127.0.0.1:9092\"], topics: [orders], group: g}"
            let s = session ? "{{ session }}-" : ""
            return """
            sources:
              - name: orders
                \(source)
            targets:
              - name: archive
                s3: {bucket: archive, key: "{{ partition }}/\(s){{ offset }}-{{ lastOffset }}.ndjson"}
              - name: cache
                redis: {url: "redis://127.0.0.1:6379", key: "order:\(s){{ offset }}"}
              - name: rows
                postgres:
                  url: "postgres://127.0.0.1/db"
                  table: orders
                  mode: upsert
                  conflictColumns: [id]
                  columns: {id: "\(s){{ partition }}-{{ offset }}", doc: "{{ value }}"}
            routes:
              - {from: [orders], to: [archive, cache, rows]}
            """
        }
        let refused = directory.appendingPathComponent("rabbitmq-offset-keys.yaml")
        try document("rabbitmq", session: false).write(to: refused, atomically: true, encoding: .utf8)
        let process = try SwitchyardProcess(arguments: ["validate", refused.path], directory: directory)
        #expect(process.waitForExit(timeout: 30) == 1)
        let log = process.log
        #expect(log.contains("rabbitmq-offset-keys.yaml:6: spec.targets[0].s3.key: is made from offsets without {{ session }}, but source 'orders' (rabbitmq)"), "\(log)")
        #expect(log.contains("rabbitmq-offset-keys.yaml:8: spec.targets[1].redis.key: is made from offsets without {{ session }}"), "\(log)")
        #expect(log.contains("spec.targets[2].postgres.columns.id: is made from offsets without {{ session }}"), "\(log)")
        #expect(!log.contains("columns.doc"), "\(log)")

        for (name, kind, session) in [("rabbitmq-session-keys.yaml", "rabbitmq", true), ("kafka-offset-keys.yaml", "kafka", false)] {
            let valid = directory.appendingPathComponent(name)
            try document(kind, session: session).write(to: valid, atomically: true, encoding: .utf8)
            let check = try SwitchyardProcess(arguments: ["validate", valid.path], directory: directory)
            #expect(check.waitForExit(timeout: 30) == 0, "\(name): \(check.log)")
        }
    }

    @Test func runRefusesAnInvalidDocumentBeforeAnythingRuns() throws {
        let directory = Paths.temporaryDirectory()
        let output = directory.appendingPathComponent("out.ndjson")
        let config = directory.appendingPathComponent("bad.yaml")
        try """
        sources:
          - name: numbers
            generate: {count: 10}
        targets:
          - name: archive
            file: {path: "\(output.path)"}
        routes:
          - {from: [numbers], to: [nowhere]}
        """.write(to: config, atomically: true, encoding: .utf8)
        let process = try SwitchyardProcess(arguments: ["run", "-c", config.path], directory: directory)
        #expect(process.waitForExit(timeout: 30) == 2)
        #expect(process.log.contains("spec.routes[0].to[0]"))
        #expect(!FileManager.default.fileExists(atPath: output.path), "nothing ran")
    }

    @Test func secretsFromFilesNeverAppearInValidationErrors() throws {
        let directory = Paths.temporaryDirectory()
        let secret = directory.appendingPathComponent("secret.txt")
        try "hunter2-very-secret\n".write(to: secret, atomically: true, encoding: .utf8)
        let config = directory.appendingPathComponent("bad.yaml")
        try """
        sources:
          - name: numbers
            generate: {count: "${file:\(secret.path)}"}
        targets:
          - {name: sink, drop: {}}
        routes:
          - {from: [numbers], to: [sink]}
        """.write(to: config, atomically: true, encoding: .utf8)
        let process = try SwitchyardProcess(arguments: ["validate", config.path], directory: directory)
        #expect(process.waitForExit(timeout: 30) == 1)
        #expect(process.log.contains("spec.sources[0].generate.count"))
        #expect(!process.log.contains("hunter2"), "\(process.log)")
    }

    @Test func schemaIsJSONAndConnectorsListsTheBuiltinFamily() throws {
        let directory = Paths.temporaryDirectory()
        let schema = try SwitchyardProcess(arguments: ["schema"], directory: directory)
        #expect(schema.waitForExit(timeout: 30) == 0)
        let parsed = try JSONSerialization.jsonObject(with: Data(schema.output.utf8)) as? [String: Any]
        #expect(parsed?["oneOf"] != nil)
        #expect(schema.output.contains("\"failEvery\""))

        let connectors = try SwitchyardProcess(arguments: ["connectors"], directory: directory)
        #expect(connectors.waitForExit(timeout: 30) == 0)
        for kind in ["source generate", "target file", "target drop", "target stdout"] {
            #expect(connectors.output.contains(kind), "\(kind) missing from:\n\(connectors.output)")
        }
        let version = try SwitchyardProcess(arguments: ["--version"], directory: directory)
        #expect(version.waitForExit(timeout: 30) == 0)
        #expect(!version.output.isEmpty)
    }
}
