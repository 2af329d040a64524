import Foundation
@testable import SwitchyardConfig
import SwitchyardCore
import Testing

@Suite("Interpolation")
struct InterpolationTests {
    /// A spec whose file target path is `path` (written as is, inside double quotes).
    func spec(path: String, extra: String = "") -> String {
        """
        sources:
          - name: gen
            generate: {count: 10}
        targets:
          - name: out
            file:
              path: "\(path)"
        routes:
          - {from: [gen], to: [out]}
        \(extra)
        """
    }

    func loadedPath(_ text: String, environment: [String: String] = [:], files: [String: String] = [:]) throws -> String? {
        try loadValid(text, environment: environment, files: files).targets.first?.options.string("path")
    }

    @Test func anEnvironmentVariableIsReplaced() throws {
        #expect(try loadedPath(spec(path: "${env:OUT_DIR}/out.ndjson"), environment: ["OUT_DIR": "/data"]) == "/data/out.ndjson")
        #expect(try loadedPath(spec(path: "${env:A}-${env:B}"), environment: ["A": "x", "B": "y"]) == "x-y")
    }

    @Test func aDefaultIsUsedWhenTheVariableIsUnsetOrEmpty() throws {
        #expect(try loadedPath(spec(path: "${env:OUT:-/tmp/default.ndjson}")) == "/tmp/default.ndjson")
        #expect(try loadedPath(spec(path: "${env:OUT:-/tmp/default.ndjson}"), environment: ["OUT": ""]) == "/tmp/default.ndjson")
        #expect(try loadedPath(spec(path: "${env:OUT:-/tmp/default.ndjson}"), environment: ["OUT": "/set"]) == "/set")
    }

    @Test func aFileIsReadWithoutItsTrailingNewline() throws {
        let files = ["/run/secrets/out": "/data/secret-path.ndjson\n"]
        #expect(try loadedPath(spec(path: "${file:/run/secrets/out}"), files: files) == "/data/secret-path.ndjson")
        #expect(try loadedPath(spec(path: "x${file:/lf}y"), files: ["/lf": "middle\n\n"]) == "xmiddley")
    }

    @Test func aFileWithAWindowsLineEndingIsTrimmedToo() throws {
        #expect(try loadedPath(spec(path: "${file:/crlf}"), files: ["/crlf": "/data/out.ndjson\r\n"]) == "/data/out.ndjson")
    }

    @Test func aMissingFileIsAnError() throws {
        let issues = try loadInvalid(spec(path: "${file:/run/secrets/none}"))
        #expect(issues.map(\.path) == ["spec.targets[0].file.path"])
        #expect(issues.first?.message.contains("cannot open '/run/secrets/none'") == true, "\(issues)")
    }

    @Test func aDoubledDollarWritesALiteralReference() throws {
        #expect(try loadedPath(spec(path: "/tmp/$${env:HOME}/x")) == "/tmp/${env:HOME}/x")
        #expect(try loadedPath(spec(path: "/tmp/$${HOME}-${env:A}"), environment: ["A": "a"]) == "/tmp/${HOME}-a")
    }

    @Test func aReferenceInACommentIsNeverRead() throws {
        let document = try loadValid(
            """
            # Set ${env:NOT_SET_ANYWHERE} before running; see ${file:/nonexistent}.
            sources:
              - name: gen   # ${env:ALSO_NOT_SET}
                generate: {count: 10}
            targets:
              - name: out
                file:
                  # path: ${env:COMMENTED_OUT}
                  path: /tmp/out.ndjson
            routes:
              - {from: [gen], to: [out]}
            """)
        #expect(document.targets.first?.options.string("path") == "/tmp/out.ndjson")
    }

    @Test func referencesAreReplacedInEveryScalarValueButNotInKeys() throws {
        let document = try loadValid(
            """
            sources:
              - name: gen
                generate:
                  count: ${env:COUNT}
                  headers:
                    "${env:H}": "${env:TYPE}"
            targets:
              - name: out
                file: {path: /tmp/out.ndjson}
            routes:
              - from: [gen]
                to: [out]
                where:
                  headers: {type: "${env:TYPE}"}
            """, environment: ["COUNT": "25", "TYPE": "order"])
        let source = try #require(document.sources.first)
        #expect(source.options.int("count") == 25)
        let headers = try #require(source.options.map("headers"))
        #expect(headers.map(\.key) == ["${env:H}"])
        #expect(headers.first?.value.stringValue == "order")
        #expect(document.routes.first?.from == ["gen"])
        #expect(document.routes.first?.filter.headers.first?.value == Array("order".utf8))
    }

    @Test func namesRefuseReferencesSoThatMessagesCanQuoteThem() throws {
        let issues = try loadInvalid(
            """
            sources:
              - name: gen
                generate: {count: 10}
            targets:
              - name: out
                file: {path: /tmp/out.ndjson}
            routes:
              - from: ["${env:SOURCE:-gen}"]
                to: [out]
            """)
        #expect(issues.map(\.path) == ["spec.routes[0].from[0]"])
        #expect(issues.first?.message.contains("written literally") == true)
    }

    @Test func anUnclosedReferenceIsAnError() throws {
        let issues = try loadInvalid(spec(path: "${env:OUT"))
        #expect(issues.map(\.path) == ["spec.targets[0].file.path"])
        #expect(issues.first?.message.contains("never closed") == true)
    }

    @Test func everyFailedReferenceIsReported() throws {
        let issues = try loadInvalid(
            """
            sources:
              - name: gen
                generate: {count: 10, channel: "${env:CHANNEL}"}
            targets:
              - name: out
                file: {path: "${env:OUT}"}
            routes:
              - {from: [gen], to: [out]}
            """)
        #expect(issues.map(\.path) == ["spec.sources[0].generate.channel", "spec.targets[0].file.path"])
        #expect(issues.map(\.line) == [3, 6])
    }

    // MARK: secrets

    static let secret = "hunter2-Sup3rS3cret"

    @Test func aFileValueThatFailsValidationIsNeverEchoed() throws {
        let files = ["/run/secrets/batch": Self.secret + "\n"]
        let result = loader(files: files).load(
            """
            sources:
              - name: gen
                generate: {count: 10}
            targets:
              - name: out
                file: {path: /tmp/out.ndjson}
            routes:
              - {from: [gen], to: [out]}
            batching:
              maxMessages: ${file:/run/secrets/batch}
              maxBytes: "${file:/run/secrets/batch}"
              maxDelay: "x${file:/run/secrets/batch}"
            delivery:
              drainTimeout: ${file:/run/secrets/batch}
              deadLetter: out
            """)
        guard case .failure(let errors) = result else {
            Issue.record("the document should be rejected")
            return
        }
        #expect(
            errors.issues.map(\.path) == [
                "spec.batching.maxMessages", "spec.batching.maxBytes", "spec.batching.maxDelay", "spec.delivery.drainTimeout",
            ])
        for issue in errors.issues {
            #expect(!issue.message.contains(Self.secret), "\(issue)")
            #expect(!issue.message.contains("hunter2"), "\(issue)")
            // The message quotes what the user wrote instead.
            #expect(issue.message.contains("${file:/run/secrets/batch}"), "\(issue)")
        }
        #expect(!errors.description.contains("hunter2"))
        #expect(!String(describing: errors).contains("hunter2"))
    }

    @Test func anEnvironmentValueThatFailsValidationIsNeverEchoed() throws {
        let result = loader(environment: ["FSYNC": Self.secret]).load(
            """
            sources:
              - name: gen
                generate: {count: 10}
            targets:
              - name: out
                file: {path: /tmp/out.ndjson, fsync: "${env:FSYNC}"}
            routes:
              - {from: [gen], to: [out]}
            observability:
              logLevel: "${env:FSYNC}"
            """)
        guard case .failure(let errors) = result else {
            Issue.record("the document should be rejected")
            return
        }
        #expect(errors.issues.count == 2)
        #expect(!errors.description.contains("hunter2"))
    }
}

@Suite("Example documents")
struct ExampleDocumentTests {
    static var configsFolder: String {
        // Tests/SwitchyardConfigTests/<this file> → the repository root.
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/") + "/configs"
    }

    static var exampleFiles: [String] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: configsFolder) else { return [] }
        return entries.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted()
    }

    @Test func thereAreExamples() {
        #expect(!Self.exampleFiles.isEmpty, "no YAML files in \(Self.configsFolder)")
    }

    /// Connector kinds of the other families (ARCHITECTURE.md section 4). This test target links
    /// only the built-in family (Package.swift), so an example that uses one of these kinds can
    /// be checked here only for everything around that kind; `switchyard validate` with every
    /// family compiled in checks the rest.
    static let otherFamilyKinds: Set<String> = ["kafka", "rabbitmq", "postgres", "redis", "s3"]

    @Test(arguments: exampleFiles)
    func everyExampleLoadsWithoutIssues(file: String) throws {
        let text = try #require(Interpolator.readFileContents(Self.configsFolder + "/" + file))
        // No environment: the examples must work with their defaults.
        guard case .failure(let errors) = loader().load(text) else { return }
        let unexpected = errors.issues.filter { issue in
            let kind = String(issue.path.split(separator: ".").last ?? "")
            let unknownKind =
                issue.message.hasPrefix("unknown source kind or field") || issue.message.hasPrefix("unknown target kind or field")
            return !(unknownKind && Self.otherFamilyKinds.contains(kind))
        }
        #expect(unexpected.isEmpty, "\(file):\n\(DocumentErrors(unexpected))")
    }

    @Test func theQuickstartLoadsWithTheBuiltinConnectors() throws {
        let text = try #require(Interpolator.readFileContents(Self.configsFolder + "/quickstart.yaml"))
        let document = try loadValid(text)
        #expect(document.isResource)
        #expect(document.sources.map(\.kind) == ["generate"])
    }
}
