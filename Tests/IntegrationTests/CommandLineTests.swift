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
        let process = try SwitchyardProcess(
            arguments: ["validate"] + files.map { configs.appendingPathComponent($0).path }, directory: directory)
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
            let source =
                sourceKind == "rabbitmq"
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
        #expect(
            log.contains(
                "rabbitmq-offset-keys.yaml:6: spec.targets[0].s3.key: is made from offsets without {{ session }}, but source 'orders' (rabbitmq)"
            ), "\(log)")
        #expect(
            log.contains("rabbitmq-offset-keys.yaml:8: spec.targets[1].redis.key: is made from offsets without {{ session }}"), "\(log)")
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

@Suite struct GraphCommandTests {
    static let document = """
        apiVersion: switchyard.dev/v1alpha1
        kind: Connector
        metadata: {name: "orders \\"eu\\""}
        spec:
          sources:
            - name: orders
              generate: {count: 10, channel: "orders.eu"}
            - name: returns
              generate: {count: 10}
          targets:
            - name: archive
              file: {path: /tmp/archive.ndjson}
            - name: audit
              drop: {}
            - name: dead-letters
              file: {path: /tmp/dead.ndjson}
          routes:
            - {name: eu, from: [orders, returns], to: [archive, audit], where: {channel: "orders.*"}}
            - {from: [returns], to: [audit], ordering: key}
          delivery: {deadLetter: dead-letters}
        """

    func graph(_ format: String) throws -> (status: Int32?, output: String, log: String) {
        let directory = Paths.temporaryDirectory()
        let config = directory.appendingPathComponent("graph.yaml")
        try Self.document.write(to: config, atomically: true, encoding: .utf8)
        let process = try SwitchyardProcess(arguments: ["graph", "-c", config.path, "--format", format], directory: directory)
        let status = process.waitForExit(timeout: 30)
        return (status, process.output, process.log)
    }

    @Test func dotOutputIsAGraphvizGraphOfSourcesRoutesTargetsAndDeadLetters() throws {
        let (status, dot, log) = try graph("dot")
        #expect(status == 0, "\(log)")
        #expect(dot.hasPrefix("digraph \"orders \\\"eu\\\"\" {"), "\(dot)")
        for line in [
            "s0 [label=\"orders\\ngenerate\"", "s1 [label=\"returns\\ngenerate\"", "r0 [label=\"eu\\nchannel orders.*\"",
            "r1 [label=\"routes[1]\\nordering key\"", "t2 [label=\"dead-letters\\nfile\"",
            "s0 -> r0;", "s1 -> r0;", "s1 -> r1;", "r0 -> t0;", "r0 -> t1;", "r1 -> t1;",
            "t0 -> t2 [label=\"dead letters\", style=dashed];", "t1 -> t2 [label=\"dead letters\", style=dashed];",
        ] {
            #expect(dot.contains(line), "missing \(line) in \(dot)")
        }
        #expect(!dot.contains("t2 -> t2"))
        // Graphviz itself accepts it and lays it out.
        let directory = Paths.temporaryDirectory()
        let file = directory.appendingPathComponent("pipeline.dot")
        try dot.write(to: file, atomically: true, encoding: .utf8)
        let dotProcess = Process()
        dotProcess.executableURL = URL(fileURLWithPath: "/usr/bin/dot")
        dotProcess.arguments = ["-Tsvg", "-o", directory.appendingPathComponent("pipeline.svg").path, file.path]
        try dotProcess.run()
        dotProcess.waitUntilExit()
        #expect(dotProcess.terminationStatus == 0)
        let svg = try String(contentsOf: directory.appendingPathComponent("pipeline.svg"), encoding: .utf8)
        #expect(svg.contains("<svg") && svg.contains("dead&#45;letters"), "\(svg.prefix(400))")
    }

    @Test func mermaidOutputIsAFlowchart() throws {
        let (status, mermaid, log) = try graph("mermaid")
        #expect(status == 0, "\(log)")
        let lines = mermaid.split(separator: "\n").map(String.init)
        #expect(lines.first == "flowchart LR")
        #expect(lines.contains("  s0([\"orders<br/>generate\"])"), "\(mermaid)")
        #expect(lines.contains("  r0{\"eu<br/>channel orders.*\"}"), "\(mermaid)")
        #expect(lines.contains("  t0[\"archive<br/>file\"]"), "\(mermaid)")
        #expect(lines.contains("  s1 --> r0"))
        #expect(lines.contains("  t0 -. \"dead letters\" .-> t2"))
    }

    @Test func anInvalidDocumentOrFormatIsRefused() throws {
        let directory = Paths.temporaryDirectory()
        let config = directory.appendingPathComponent("bad.yaml")
        try "sources: []\n".write(to: config, atomically: true, encoding: .utf8)
        let bad = try SwitchyardProcess(arguments: ["graph", "-c", config.path], directory: directory)
        #expect(bad.waitForExit(timeout: 30) == 2)
        #expect(bad.log.contains("spec.targets: required field is missing"), "\(bad.log)")
        let format = try SwitchyardProcess(arguments: ["graph", "-c", config.path, "--format", "png"], directory: directory)
        #expect(format.waitForExit(timeout: 30) == 2)
        #expect(format.log.contains("expected dot or mermaid"), "\(format.log)")
    }
}
