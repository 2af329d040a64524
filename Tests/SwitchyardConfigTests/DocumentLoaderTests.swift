@testable import SwitchyardConfig
import SwitchyardCore
import Testing

@Suite("Document loading")
struct DocumentLoaderTests {
    @Test func aWholeCustomResourceLoads() throws {
        let document = try loadValid(
            """
            apiVersion: switchyard.dev/v1alpha1
            kind: Connector
            metadata:
              name: orders-to-archive
              namespace: shop
              labels: {team: data}
            spec:
              sources:
                - name: orders
                  generate:
                    count: 100
                    key: "order-{{ offset }}"
                    value: '{"id": {{ offset }}}'
                    headers: {type: order}
              targets:
                - name: archive
                  file:
                    path: /tmp/archive.ndjson
                    fsync: false
                  batching: {maxMessages: 50}
                  parallelism: 2
                - name: dead-letters
                  drop: {}
              routes:
                - from: [orders]
                  to: [archive]
                  where: {channel: "orders*", headers: {type: order}}
                  ordering: key
              delivery:
                deadLetter: dead-letters
                retry: {initialBackoff: 50ms, maxBackoff: 10s, maxAttempts: 5}
                memoryLimit: 64MiB
                drainTimeout: 5s
              batching: {maxMessages: 200, maxBytes: 512KiB, maxDelay: 5ms}
              observability: {listen: "127.0.0.1:9090", logLevel: debug, logFormat: json}
              state: paused
              deployment: {replicas: 2, image: "switchyard:dev", resources: {limits: {memory: 512Mi}}}
            """)
        #expect(document.isResource)
        #expect(document.name == "orders-to-archive")
        #expect(document.sources.map(\.name) == ["orders"])
        #expect(document.sources.first?.kind == "generate")
        #expect(document.targets.map(\.name) == ["archive", "dead-letters"])
        #expect(document.targets.map(\.kind) == ["file", "drop"])
        #expect(document.targets.first?.options.string("path") == "/tmp/archive.ndjson")
        #expect(document.targets.first?.options.bool("fsync") == false)
        #expect(document.targets.first?.common.int("parallelism") == 2)
        let route = try #require(document.routes.first)
        #expect(route.from == ["orders"])
        #expect(route.to == ["archive"])
        #expect(route.ordering == .key)
        #expect(route.filter.channel == Glob("orders*"))
        #expect(route.filter.headers.map(\.name) == ["type"])
        #expect(route.filter.headers.map(\.value) == [Array("order".utf8)])
        #expect(document.delivery.deadLetter == "dead-letters")
        #expect(document.delivery.retry == RetryPolicy(initialBackoff: .milliseconds(50), maxBackoff: .seconds(10), maxAttempts: 5))
        #expect(document.delivery.memoryLimit == 64 << 20)
        #expect(document.delivery.drainTimeout == .seconds(5))
        #expect(document.batching == BatchingPolicy(maxMessages: 200, maxBytes: 512 << 10, maxDelay: .milliseconds(5)))
        // A target's own batching overrides spec.batching field by field.
        #expect(
            document.batching(for: document.targets[0]) == BatchingPolicy(maxMessages: 50, maxBytes: 512 << 10, maxDelay: .milliseconds(5)))
        #expect(document.batching(for: document.targets[1]) == document.batching)
        #expect(document.observability == .init(listen: "127.0.0.1:9090", logLevel: "debug", logFormat: "json"))
        #expect(document.state == "paused")
    }

    @Test func aBareSpecLoadsWithDefaults() throws {
        let document = try loadValid(minimalSpec)
        #expect(!document.isResource)
        #expect(document.name == nil)
        #expect(document.batching == BatchingPolicy(maxMessages: 500, maxBytes: 1 << 20, maxDelay: .milliseconds(20)))
        #expect(document.batching.maxBytes == 1_048_576)
        #expect(document.delivery.drainTimeout == .seconds(20))
        #expect(document.delivery.deadLetter == nil)
        #expect(document.delivery.memoryLimit == nil)
        #expect(document.delivery.retry == RetryPolicy(initialBackoff: .milliseconds(100), maxBackoff: .seconds(30), maxAttempts: nil))
        #expect(document.routes.map(\.ordering) == [.partition])
        #expect(document.routes.first?.filter.isEmpty == true)
        #expect(document.routes.first?.name == "routes[0]")
        #expect(document.state == "running")
        #expect(document.observability == .init(listen: "0.0.0.0:8080", logLevel: "info", logFormat: "auto"))
        let target = try #require(document.targets.first)
        #expect(target.common.int("parallelism") == 1)
        #expect(target.options.bool("fsync") == true)
        #expect(document.batching(for: target) == document.batching)
        let source = try #require(document.sources.first)
        #expect(source.options.int("count") == 10)
        #expect(source.options.int("shards") == 1)
        #expect(source.options.int("batchSize") == 500)
        #expect(source.options.template("channel")?.source == "generate")
    }

    @Test func theSameSpecLoadsAloneOrInsideAResource() throws {
        let bare = try loadValid(minimalSpec)
        let indented = minimalSpec.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n")
        let whole = try loadValid("apiVersion: switchyard.dev/v1alpha1\nkind: Connector\nmetadata: {name: m}\nspec:\n" + indented)
        #expect(whole.sources.map(\.fingerprint) == bare.sources.map(\.fingerprint))
        #expect(whole.targets.map(\.fingerprint) == bare.targets.map(\.fingerprint))
        #expect(whole.batching == bare.batching)
        #expect(whole.delivery == bare.delivery)
        // Paths in a resource start at spec too.
        #expect(whole.targets.first?.path == "spec.targets[0]")
        #expect(bare.targets.first?.path == "spec.targets[0]")
    }

    @Test func everyMistakeIsReportedAtOnce() throws {
        let issues = try loadInvalid(
            """
            sources:
              - name: gen
                generate: {count: 10}
            targets:
              - name: out
                file:
                  path: /tmp/out.ndjson
                  colour: blue
            routes:
              - {from: [gen], to: [out]}
            batching:
              maxMessages: lots
            delivery:
              drainTimeout: 10
            """)
        #expect(
            issues.map(\.path) == [
                "spec.targets[0].file.colour",
                "spec.batching.maxMessages",
                "spec.delivery.drainTimeout",
            ])
        #expect(issues.map(\.line) == [8, 12, 14])
    }

    @Test func referenceMistakesAreReportedTogether() throws {
        let issues = try loadInvalid(
            """
            sources:
              - name: gen
                generate: {count: 10}
              - name: gen
                generate: {count: 5}
            targets:
              - name: out
                drop: {}
            routes:
              - {from: [gen], to: [out, nowhere]}
            delivery:
              deadLetter: dlq
            """)
        #expect(Set(issues.map(\.path)) == ["spec.sources[1].name", "spec.routes[0].to[1]", "spec.delivery.deadLetter"])
    }

    @Test func inFlightAboveOneIsRefusedForAKindThatConfirmsEachBatchBeforeTheNext() throws {
        let issues = try loadInvalid(
            """
            sources:
              - name: gen
                generate: {count: 10}
            targets:
              - name: out
                inFlight: 2
                file: {path: /tmp/out.ndjson}
              - name: fine
                inFlight: 1
                drop: {}
            routes:
              - {from: [gen], to: [out, fine]}
            """)
        #expect(issues.map(\.path) == ["spec.targets[0].inFlight"])
        #expect(issues.map(\.line) == [6])
        #expect(issues.first?.message.contains("a file target confirms each batch before it starts the next") == true)
    }

    @Test func schemaAndReferenceMistakesAreReportedTogether() throws {
        let issues = try loadInvalid(
            """
            sources:
              - name: gen
                generate: {count: 10}
            targets:
              - name: out
                drop: {colour: blue}
              - name: other
                drop: {}
            routes:
              - {from: [gen], to: [out, nowhere]}
              - {from: [gen], to: [other]}
            """)
        #expect(issues.contains { $0.path == "spec.targets[0].drop.colour" })
        #expect(issues.contains { $0.path == "spec.routes[0].to[1]" && $0.message.contains("no target is named 'nowhere'") })
    }

    @Test func issuesAreSortedByLineAndDescribeWhereTheyAre() throws {
        let result = loader().load(
            """
            sources:
              - name: gen
                generate: {count: ten}
            targets:
              - name: out
                file: {path: /tmp/x, fsync: maybe}
            routes:
              - {from: [gen], to: [out]}
            """)
        guard case .failure(let errors) = result else {
            Issue.record("should fail")
            return
        }
        #expect(errors.issues.map(\.line) == [3, 6])
        let lines = errors.description.split(separator: "\n").map(String.init)
        #expect(lines.count == 2)
        #expect(lines[0].hasPrefix("spec.sources[0].generate.count (line 3): "))
        #expect(lines[0].contains("'ten'"))
        #expect(lines[1].hasPrefix("spec.targets[0].file.fsync (line 6): "))
    }

    @Test func yamlSyntaxErrorsNameTheLine() throws {
        let issues = try loadInvalid(
            """
            sources:
              - name: gen
                generate: {count: 10
            targets: []
            """)
        #expect(issues.count == 1)
        #expect(issues.first?.path == "document")
        #expect(issues.first?.line != nil)
        #expect(issues.first?.message.contains("not valid YAML") == true)
    }

    @Test func anEmptyOrNonObjectDocumentIsRejected() throws {
        #expect(try loadInvalid("").first?.message.contains("empty") == true)
        #expect(try loadInvalid("- a\n- b\n").first?.message.contains("expected an object") == true)
    }
}

/// One invalid document and the issue it must produce.
struct InvalidCase: CustomTestStringConvertible, Sendable {
    var name: String
    var yaml: String
    var path: String
    var line: Int
    /// Text the message must contain.
    var mentions: String
    var environment: [String: String] = [:]
    /// How many issues the document produces in all.
    var count = 1

    var testDescription: String { name }
}

@Suite("Invalid documents")
struct InvalidDocumentTests {
    static let cases: [InvalidCase] = [
        InvalidCase(
            name: "unknown field under a target",
            yaml: """
                sources:
                  - name: gen
                    generate: {count: 10}
                targets:
                  - name: out
                    file:
                      path: /tmp/out.ndjson
                      colour: blue
                routes:
                  - {from: [gen], to: [out]}
                """, path: "spec.targets[0].file.colour", line: 8, mentions: "unknown field 'colour'"),
        InvalidCase(
            name: "wrong type",
            yaml: minimalSpec + """

                batching:
                  maxMessages: "lots"
                """, path: "spec.batching.maxMessages", line: 13, mentions: "expected an integer"),
        InvalidCase(
            name: "integer out of range",
            yaml: minimalSpec + """

                batching:
                  maxMessages: 0
                """, path: "spec.batching.maxMessages", line: 13, mentions: "at least 1"),
        InvalidCase(
            name: "bad duration",
            yaml: minimalSpec + """

                delivery:
                  drainTimeout: 10
                """, path: "spec.delivery.drainTimeout", line: 13, mentions: "expected a duration"),
        InvalidCase(
            name: "bad size",
            yaml: minimalSpec + """

                batching:
                  maxBytes: 12XB
                """, path: "spec.batching.maxBytes", line: 13, mentions: "expected a size"),
        InvalidCase(
            name: "bad choice",
            yaml: minimalSpec + """

                observability:
                  logLevel: loud
                """, path: "spec.observability.logLevel", line: 13, mentions: "expected one of"),
        InvalidCase(
            name: "dangling route source",
            yaml: """
                sources:
                  - name: gen
                    generate: {count: 10}
                targets:
                  - name: out
                    file: {path: /tmp/out.ndjson}
                routes:
                  - from: [nope]
                    to: [out]
                  - {from: [gen], to: [out]}
                """, path: "spec.routes[0].from[0]", line: 8, mentions: "no source is named 'nope'"),
        InvalidCase(
            name: "dangling route target",
            yaml: """
                sources:
                  - name: gen
                    generate: {count: 10}
                targets:
                  - name: out
                    file: {path: /tmp/out.ndjson}
                routes:
                  - from: [gen]
                    to: [out, nope]
                """, path: "spec.routes[0].to[1]", line: 9, mentions: "no target is named 'nope'"),
        InvalidCase(
            name: "route with an empty to",
            yaml: """
                sources:
                  - name: gen
                    generate: {count: 10}
                targets:
                  - name: out
                    file: {path: /tmp/out.ndjson}
                routes:
                  - from: [gen]
                    to: []
                  - {from: [gen], to: [out]}
                """, path: "spec.routes[0].to", line: 9, mentions: "at least one target"),
        InvalidCase(
            name: "route without to",
            yaml: """
                sources:
                  - name: gen
                    generate: {count: 10}
                targets:
                  - name: out
                    file: {path: /tmp/out.ndjson}
                routes:
                  - from: [gen]
                  - {from: [gen], to: [out]}
                """, path: "spec.routes[0].to", line: 8, mentions: "required"),
        InvalidCase(
            name: "duplicate source names",
            yaml: """
                sources:
                  - name: gen
                    generate: {count: 10}
                  - name: gen
                    generate: {count: 20}
                targets:
                  - name: out
                    file: {path: /tmp/out.ndjson}
                routes:
                  - {from: [gen], to: [out]}
                """, path: "spec.sources[1].name", line: 4, mentions: "already named 'gen'"),
        InvalidCase(
            name: "duplicate target names",
            yaml: """
                sources:
                  - name: gen
                    generate: {count: 10}
                targets:
                  - name: out
                    file: {path: /tmp/out.ndjson}
                  - name: out
                    drop: {}
                routes:
                  - {from: [gen], to: [out]}
                """, path: "spec.targets[1].name", line: 7, mentions: "already named 'out'"),
        InvalidCase(
            name: "missing required path of a file target",
            yaml: """
                sources:
                  - name: gen
                    generate: {count: 10}
                targets:
                  - name: out
                    file:
                      fsync: false
                routes:
                  - {from: [gen], to: [out]}
                """, path: "spec.targets[0].file.path", line: 7, mentions: "required"),  // the object's first line
        InvalidCase(
            name: "empty path of a file target",
            yaml: """
                sources:
                  - name: gen
                    generate: {count: 10}
                targets:
                  - name: out
                    file:
                      path: ""
                routes:
                  - {from: [gen], to: [out]}
                """, path: "spec.targets[0].file.path", line: 7, mentions: "must not be empty"),
        InvalidCase(
            name: "two connector kinds in one entry",
            yaml: """
                sources:
                  - name: gen
                    generate: {count: 10}
                targets:
                  - name: out
                    file: {path: /tmp/out.ndjson}
                    drop: {}
                routes:
                  - {from: [gen], to: [out]}
                """, path: "spec.targets[0].drop", line: 7, mentions: "exactly one connector kind"),
        InvalidCase(
            name: "no connector kind",
            yaml: """
                sources:
                  - name: gen
                    generate: {count: 10}
                targets:
                  - name: out
                    parallelism: 2
                routes:
                  - {from: [gen], to: [out]}
                """, path: "spec.targets[0]", line: 5, mentions: "names no target kind"),
        InvalidCase(
            name: "unknown connector kind",
            yaml: """
                sources:
                  - name: gen
                    generate: {count: 10}
                targets:
                  - name: out
                    carrier-pigeon: {loft: roof}
                routes:
                  - {from: [gen], to: [out]}
                """, path: "spec.targets[0].carrier-pigeon", line: 6, mentions: "unknown target kind"),
        InvalidCase(
            name: "a source kind used as a target",
            yaml: """
                sources:
                  - name: gen
                    generate: {count: 10}
                targets:
                  - name: out
                    generate: {count: 1}
                routes:
                  - {from: [gen], to: [out]}
                """, path: "spec.targets[0].generate", line: 6, mentions: "unknown target kind"),
        InvalidCase(
            name: "missing entry name",
            yaml: """
                sources:
                  - generate: {count: 10}
                targets:
                  - name: out
                    file: {path: /tmp/out.ndjson}
                routes:
                  - {from: [gen], to: [out]}
                """, path: "spec.sources[0].name", line: 2, mentions: "required"),
        InvalidCase(
            name: "bad entry name",
            yaml: """
                sources:
                  - name: "my source"
                    generate: {count: 10}
                targets:
                  - name: out
                    file: {path: /tmp/out.ndjson}
                routes:
                  - {from: [gen], to: [out]}
                """, path: "spec.sources[0].name", line: 2, mentions: "letters, digits", count: 2),
        InvalidCase(
            name: "dead letter naming no target",
            yaml: minimalSpec + """

                delivery:
                  deadLetter: dlq
                """, path: "spec.delivery.deadLetter", line: 13, mentions: "no target is named 'dlq'"),
        InvalidCase(
            name: "generate with both size and value",
            yaml: """
                sources:
                  - name: gen
                    generate:
                      size: 100
                      value: "{{ offset }}"
                targets:
                  - name: out
                    file: {path: /tmp/out.ndjson}
                routes:
                  - {from: [gen], to: [out]}
                """, path: "spec.sources[0].generate.value", line: 5, mentions: "set only one of size, value"),
        InvalidCase(
            name: "generate with a rate of zero",
            yaml: """
                sources:
                  - name: gen
                    generate:
                      rate: 0
                targets:
                  - name: out
                    file: {path: /tmp/out.ndjson}
                routes:
                  - {from: [gen], to: [out]}
                """, path: "spec.sources[0].generate.rate", line: 4, mentions: "greater than 0"),
        InvalidCase(
            name: "bad template syntax in a generate key",
            yaml: """
                sources:
                  - name: gen
                    generate:
                      count: 10
                      key: "user-{{ offset"
                targets:
                  - name: out
                    file: {path: /tmp/out.ndjson}
                routes:
                  - {from: [gen], to: [out]}
                """, path: "spec.sources[0].generate.key", line: 5, mentions: "never closed"),
        InvalidCase(
            name: "unknown template variable",
            yaml: """
                sources:
                  - name: gen
                    generate:
                      headers: {region: "{{ region }}"}
                targets:
                  - name: out
                    file: {path: /tmp/out.ndjson}
                routes:
                  - {from: [gen], to: [out]}
                """, path: "spec.sources[0].generate.headers.region", line: 4, mentions: "unknown variable 'region'"),
        InvalidCase(
            name: "environment variable missing without default",
            yaml: """
                sources:
                  - name: gen
                    generate: {count: 10}
                targets:
                  - name: out
                    file:
                      path: "${env:OUT_DIR}/out.ndjson"
                routes:
                  - {from: [gen], to: [out]}
                """, path: "spec.targets[0].file.path", line: 7, mentions: "OUT_DIR"),
        InvalidCase(
            name: "environment variable missing in a whole resource",
            yaml: """
                apiVersion: switchyard.dev/v1alpha1
                kind: Connector
                spec:
                  sources:
                    - name: gen
                      generate: {count: 10}
                  targets:
                    - name: out
                      file:
                        path: "${env:OUT_DIR}/out.ndjson"
                  routes:
                    - {from: [gen], to: [out]}
                """, path: "spec.targets[0].file.path", line: 10, mentions: "OUT_DIR"),
        InvalidCase(
            name: "environment variable set but empty",
            yaml: """
                sources:
                  - name: gen
                    generate: {count: 10}
                targets:
                  - name: out
                    file: {path: "${env:OUT}"}
                routes:
                  - {from: [gen], to: [out]}
                """, path: "spec.targets[0].file.path", line: 6, mentions: "OUT", environment: ["OUT": ""]),
        InvalidCase(
            name: "unknown reference",
            yaml: """
                sources:
                  - name: gen
                    generate: {count: 10}
                targets:
                  - name: out
                    file: {path: "${vault:secret/out}"}
                routes:
                  - {from: [gen], to: [out]}
                """, path: "spec.targets[0].file.path", line: 6, mentions: "unknown reference"),
        InvalidCase(
            name: "wrong apiVersion",
            yaml: """
                apiVersion: switchyard.dev/v1
                kind: Connector
                spec:
                  sources:
                    - name: gen
                      generate: {count: 10}
                  targets:
                    - name: out
                      file: {path: /tmp/out.ndjson}
                  routes:
                    - {from: [gen], to: [out]}
                """, path: "apiVersion", line: 1, mentions: "switchyard.dev/v1alpha1"),
        InvalidCase(
            name: "wrong kind",
            yaml: """
                apiVersion: switchyard.dev/v1alpha1
                kind: Pipeline
                spec:
                  sources:
                    - name: gen
                      generate: {count: 10}
                  targets:
                    - name: out
                      file: {path: /tmp/out.ndjson}
                  routes:
                    - {from: [gen], to: [out]}
                """, path: "kind", line: 2, mentions: "Connector"),
        InvalidCase(
            name: "resource without spec",
            yaml: """
                apiVersion: switchyard.dev/v1alpha1
                kind: Connector
                metadata: {name: x}
                """, path: "spec", line: 1, mentions: "required"),
        InvalidCase(
            name: "a source in no route",
            yaml: """
                sources:
                  - name: gen
                    generate: {count: 10}
                  - name: idle
                    generate: {count: 10}
                targets:
                  - name: out
                    file: {path: /tmp/out.ndjson}
                routes:
                  - {from: [gen], to: [out]}
                """, path: "spec.sources[1].name", line: 4, mentions: "source 'idle' is in no route"),
        InvalidCase(
            name: "a target in no route",
            yaml: """
                sources:
                  - name: gen
                    generate: {count: 10}
                targets:
                  - name: out
                    file: {path: /tmp/out.ndjson}
                  - name: idle
                    drop: {}
                routes:
                  - {from: [gen], to: [out]}
                """, path: "spec.targets[1].name", line: 7, mentions: "target 'idle' is in no route"),
        InvalidCase(
            name: "no routes",
            yaml: """
                sources:
                  - name: gen
                    generate: {count: 10}
                targets:
                  - name: out
                    file: {path: /tmp/out.ndjson}
                routes: []
                """, path: "spec.routes", line: 7, mentions: "at least one route", count: 3),  // plus: gen and out are in no route
        InvalidCase(
            name: "initial backoff above max backoff",
            yaml: minimalSpec + """

                delivery:
                  retry: {initialBackoff: 1m, maxBackoff: 1s}
                """, path: "spec.delivery.retry.initialBackoff", line: 13, mentions: "must not exceed maxBackoff"),
        InvalidCase(
            name: "memory limit too small",
            yaml: minimalSpec + """

                delivery:
                  memoryLimit: 512KiB
                """, path: "spec.delivery.memoryLimit", line: 13, mentions: "at least 1MiB"),
        InvalidCase(
            name: "bad listen address",
            yaml: minimalSpec + """

                observability:
                  listen: localhost
                """, path: "spec.observability.listen", line: 13, mentions: "HOST:PORT"),
        InvalidCase(
            name: "a field set twice",
            yaml: """
                sources:
                  - name: gen
                    generate: {count: 10}
                targets:
                  - name: out
                    file: {path: /tmp/out.ndjson}
                routes:
                  - {from: [gen], to: [out]}
                batching: {maxMessages: 10, maxMessages: 20}
                """, path: "spec.batching.maxMessages", line: 9, mentions: "set twice"),
    ]

    @Test(arguments: cases)
    func isRejectedWithItsPathAndLine(_ invalid: InvalidCase) throws {
        let issues = try loadInvalid(invalid.yaml, environment: invalid.environment)
        #expect(issues.count == invalid.count, "\(issues)")
        let issue = try #require(issues.first { $0.path == invalid.path }, "no issue at \(invalid.path) in \(issues)")
        #expect(issue.line == invalid.line, "\(issue)")
        #expect(issue.message.contains(invalid.mentions), "\(issue)")
    }
}
