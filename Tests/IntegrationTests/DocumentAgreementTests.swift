import Foundation
import Testing

/// One document, two homes: what `switchyard validate` accepts as a file, the CRD that
/// `switchyard crd` prints accepts as a resource, and what one refuses the other refuses.
///
/// Every document in configs/ (a spec alone is wrapped into a resource) and a generated set of
/// valid and invalid documents go through the validator (the binary) and through the CRD's
/// openAPIV3Schema (scripts/lib/check_connector_samples.py with Python's jsonschema, the way the
/// API server reads a structural schema). The generated faults are those a structural schema
/// can judge: types, enums, patterns, bounds, unknown fields, `${...}` references. The CRD's
/// CEL rules (names that routes use, one kind per entry) are tested in CRDTests.
@Suite struct DocumentAgreementTests {
    static let base = """
        apiVersion: switchyard.dev/v1alpha1
        kind: Connector
        metadata: {name: NAME}
        spec:
          sources:
            - name: SOURCE
              kafka:
                brokers: ["127.0.0.1:9092"]
                topics: [orders]
                group: agreement
                startOffset: START
                EXTRA
            - name: ticks
              generate: {count: 10, rate: RATE}
          targets:
            - name: archive
              file: {path: PATH, fsync: FSYNC}
          routes:
            - {from: [SOURCE, ticks], to: [archive]}
          delivery: {drainTimeout: DRAIN, memoryLimit: MEMORY}
          batching: {maxMessages: MAXMESSAGES}
          observability: {logLevel: LOGLEVEL}
          state: STATE
          deployment: {replicas: REPLICAS}
          AUTOSCALING
        """

    static let defaults: [String: String] = [
        "SOURCE": "orders", "START": "earliest", "EXTRA": "", "RATE": "5", "PATH": "/tmp/agreement.ndjson", "FSYNC": "true",
        "DRAIN": "5s", "MEMORY": "64MiB", "MAXMESSAGES": "100", "LOGLEVEL": "info", "STATE": "running", "REPLICAS": "1",
        "AUTOSCALING": "",
    ]

    /// A reference whose variable is unset, so that its default is used.
    static func reference(_ value: String) -> String { "\"${env:AGREEMENT_UNSET:-\(value)}\"" }

    /// Name, placeholder, value, and whether the document is valid.
    static let cases: [(String, String, String, Bool)] = [
        ("literal", "START", "earliest", true),
        ("choice-reference", "START", reference("earliest"), true),
        ("int-reference", "MAXMESSAGES", reference("100"), true),
        ("duration-reference", "DRAIN", reference("5s"), true),
        ("size-reference", "MEMORY", reference("64MiB"), true),
        ("size-integer", "MEMORY", "67108864", true),
        ("duration-zero", "DRAIN", "0", true),
        ("level-reference", "LOGLEVEL", reference("debug"), true),
        ("string-with-escaped-dollar", "PATH", "\"/tmp/$${env:X}.ndjson\"", true),
        ("choice-word", "START", "sideways", false),
        ("choice-escaped-reference", "START", "\"$${env:X}\"", false),
        ("bool-reference", "FSYNC", reference("true"), false),
        ("bool-quoted", "FSYNC", "\"true\"", false),
        ("number-reference", "RATE", reference("5"), false),
        ("number-quoted", "RATE", "\"5\"", false),
        ("int-quoted", "MAXMESSAGES", "\"100\"", false),
        ("int-word", "MAXMESSAGES", "lots", false),
        ("int-below-minimum", "MAXMESSAGES", "0", false),
        ("duration-word", "DRAIN", "soon", false),
        ("duration-integer", "DRAIN", "10", false),
        ("size-word", "MEMORY", "lots", false),
        ("level-word", "LOGLEVEL", "loud", false),
        ("replicas-reference", "REPLICAS", reference("2"), false),
        ("state-reference", "STATE", reference("paused"), false),
        (
            "autoscaling-duration-reference", "AUTOSCALING",
            "autoscaling: {maxReplicas: 3, lagPerReplica: 1000, cooldown: \(reference("5m"))}", false
        ),
        (
            "autoscaling-string-reference", "AUTOSCALING",
            "autoscaling: {maxReplicas: 3, lagPerReplica: 1000, prometheus: \(reference("http://prometheus:9090"))}", false
        ),
        ("unknown-field", "EXTRA", "colour: blue", false),
        ("name-reference", "SOURCE", reference("orders"), false),
        ("name-with-space", "SOURCE", "\"ord ers\"", false),
    ]

    @Test func theValidatorAndTheCRDSchemaGiveTheSameVerdict() throws {
        let python = Paths.repository.appendingPathComponent(".state/venv/bin/python").path
        try #require(
            FileManager.default.isExecutableFile(atPath: python), "the Python environment of scripts/setup is missing (.state/venv)")
        let directory = Paths.temporaryDirectory()

        let crdProcess = try SwitchyardProcess(arguments: ["crd"], directory: directory)
        #expect(crdProcess.waitForExit(timeout: 30) == 0, "\(crdProcess.log)")
        let crd = directory.appendingPathComponent("crd.yaml")
        try crdProcess.output.write(to: crd, atomically: true, encoding: .utf8)

        var files: [(file: URL, expected: Bool?)] = []
        let configs = Paths.repository.appendingPathComponent("configs")
        for name in try FileManager.default.contentsOfDirectory(atPath: configs.path).filter({ $0.hasSuffix(".yaml") }).sorted() {
            let text = try String(contentsOf: configs.appendingPathComponent(name), encoding: .utf8)
            let file = directory.appendingPathComponent("config-" + name)
            try Self.asResource(text, name: String(name.dropLast(5))).write(to: file, atomically: true, encoding: .utf8)
            files.append((file, true))
        }
        for (name, placeholder, value, valid) in Self.cases {
            var values = Self.defaults
            values[placeholder] = value
            values["NAME"] = name
            var text = Self.base
            for (key, value) in values.sorted(by: { $0.key.count > $1.key.count }) {
                text = text.replacingOccurrences(of: key, with: value)
            }
            let file = directory.appendingPathComponent("generated-\(name).yaml")
            try text.write(to: file, atomically: true, encoding: .utf8)
            files.append((file, valid))
        }

        let validate = try SwitchyardProcess(arguments: ["validate"] + files.map(\.file.path), directory: directory)
        _ = validate.waitForExit(timeout: 60)
        let checker = Process()
        checker.executableURL = URL(fileURLWithPath: python)
        checker.arguments =
            [Paths.repository.appendingPathComponent("scripts/lib/check_connector_samples.py").path, crd.path] + files.map(\.file.path)
        let out = Pipe(), err = Pipe()
        checker.standardOutput = out
        checker.standardError = err
        try checker.run()
        let schemaOut = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let schemaErr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        checker.waitUntilExit()

        var disagreements: [String] = []
        for (file, expected) in files {
            let path = file.path
            let validator = validate.output.contains("\(path): valid (")
            let validatorRefused = validate.log.contains("\(path): ")
            let schema = schemaOut.contains("\(path): valid against")
            let schemaRefused = schemaErr.contains("\(path): ")
            #expect(validator != validatorRefused, "\(file.lastPathComponent): the validator gave no verdict\n\(validate.log)")
            #expect(schema != schemaRefused, "\(file.lastPathComponent): the schema check gave no verdict\n\(schemaErr)")
            if validator != schema {
                disagreements.append(
                    "\(file.lastPathComponent): validator \(validator ? "accepts" : "refuses"), CRD schema \(schema ? "accepts" : "refuses")"
                )
            }
            if let expected {
                #expect(
                    validator == expected,
                    "\(file.lastPathComponent): the validator should \(expected ? "accept" : "refuse") it\n\(validate.log)")
            }
        }
        #expect(
            disagreements.isEmpty, "\(disagreements.joined(separator: "\n"))\n-- validator:\n\(validate.log)\n-- CRD schema:\n\(schemaErr)")
    }

    /// A spec alone, wrapped into a Connector resource; a resource as it is.
    static func asResource(_ text: String, name: String) -> String {
        if text.split(separator: "\n").contains(where: { $0.hasPrefix("apiVersion:") }) { return text }
        let body = text.split(separator: "\n", omittingEmptySubsequences: false).map { $0.isEmpty ? "" : "  " + $0 }.joined(separator: "\n")
        return "apiVersion: switchyard.dev/v1alpha1\nkind: Connector\nmetadata: {name: \(name)}\nspec:\n\(body)\n"
    }
}
