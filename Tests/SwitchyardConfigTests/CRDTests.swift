import BuiltinConnectors
import Foundation
import SwitchyardConfig
import SwitchyardCore
import Testing

/// The repository root, from this file's path (Tests/SwitchyardConfigTests/<file>).
private let repository: String = {
    var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(3)
    return parts.joined(separator: "/")
}()

private let builtinCRD = CRDGenerator(registry: ConnectorRegistry([BuiltinConnectors.family]))

/// The `switchyard` binary of this build: `SWITCHYARD_BIN`, or the one next to the test bundle.
private func switchyardBinary() -> String? {
    if let path = ProcessInfo.processInfo.environment["SWITCHYARD_BIN"] { return path }
    let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    var directory = URL(fileURLWithPath: executable).deletingLastPathComponent()
    // On macOS the test binary sits inside NAME.xctest/Contents/MacOS.
    while directory.path != "/" {
        let candidate = directory.appendingPathComponent("switchyard").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        if !directory.path.contains(".xctest") { break }
        directory.deleteLastPathComponent()
    }
    return nil
}

/// Runs `binary arguments...`; returns its standard output and exit status.
private func run(_ binary: String, _ arguments: [String]) throws -> (output: String, status: Int32) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: binary)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (String(decoding: data, as: UTF8.self), process.terminationStatus)
}

/// A parsed YAML file as a JSON value (plain scalars typed as YAML 1.2's core schema does).
private func parseYAML(_ text: String) throws -> JSONValue {
    guard case .success(let root) = YAMLLoader.parse(text) else {
        throw LoadedAnyway()
    }
    func convert(_ node: ConfigNode) -> JSONValue {
        switch node.content {
        case .null: return .null
        case .scalar(let scalar):
            if scalar.quoted { return .string(scalar.text) }
            if scalar.text == "true" { return .bool(true) }
            if scalar.text == "false" { return .bool(false) }
            if let value = Int(scalar.text) { return .int(value) }
            return .string(scalar.text)
        case .sequence(let items): return .array(items.map(convert))
        case .mapping(let entries):
            var members: [String: JSONValue] = [:]
            for entry in entries { members[entry.key] = convert(entry.value) }
            return .object(members)
        }
    }
    return convert(root)
}

private extension JSONValue {
    subscript(_ key: String) -> JSONValue? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    var members: [String: JSONValue] {
        if case .object(let members) = self { return members }
        return [:]
    }

    var items: [JSONValue] {
        if case .array(let items) = self { return items }
        return []
    }

    var text: String? {
        if case .string(let text) = self { return text }
        return nil
    }

    /// Follows `a.b.c`-style keys.
    func at(_ path: String) -> JSONValue? {
        var node: JSONValue? = self
        for key in path.split(separator: ".") { node = node?[String(key)] }
        return node
    }
}

/// Fields a Kubernetes JSONSchemaProps may hold in a CRD (no `$ref`, no `definitions`).
private let allowedKeywords: Set<String> = [
    "type", "format", "description", "title", "properties", "additionalProperties", "items", "required",
    "enum", "pattern", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
    "minLength", "maxLength", "minItems", "maxItems", "uniqueItems", "minProperties", "maxProperties",
    "anyOf", "allOf", "oneOf", "not", "nullable", "example", "externalDocs",
    "x-kubernetes-int-or-string", "x-kubernetes-preserve-unknown-fields", "x-kubernetes-embedded-resource",
    "x-kubernetes-list-type", "x-kubernetes-list-map-keys", "x-kubernetes-map-type", "x-kubernetes-validations",
]

/// Every violation of Kubernetes' structural-schema rules (and of this project's stricter ones:
/// every node typed, no defaults) under `node`, with the path where it occurs.
private func structuralProblems(_ node: JSONValue, path: String, inJunctor: Bool = false) -> [String] {
    var problems: [String] = []
    let members = node.members
    for key in members.keys where !allowedKeywords.contains(key) {
        problems.append("\(path): keyword '\(key)' is not allowed in a CRD schema")
    }
    if members["default"] != nil { problems.append("\(path): has a default") }
    let intOrString = members["x-kubernetes-int-or-string"] == .bool(true)
    if inJunctor {
        for key in ["type", "description", "default", "additionalProperties", "nullable", "properties", "items"] where members[key] != nil {
            problems.append("\(path): '\(key)' inside anyOf/allOf/oneOf/not")
        }
        return problems
    }
    if intOrString {
        if members["type"] != nil { problems.append("\(path): x-kubernetes-int-or-string with a type") }
        if let anyOf = members["anyOf"], anyOf != .array([.object(["type": .string("integer")]), .object(["type": .string("string")])]) {
            problems.append("\(path): x-kubernetes-int-or-string with an anyOf other than [integer, string]")
        }
    } else {
        guard let type = members["type"]?.text, !type.isEmpty else {
            return problems + ["\(path): no type"]
        }
        if members["anyOf"] != nil || members["oneOf"] != nil || members["allOf"] != nil {
            for junctor in ["anyOf", "oneOf", "allOf"] {
                for (index, branch) in (members[junctor]?.items ?? []).enumerated() {
                    problems += structuralProblems(branch, path: "\(path).\(junctor)[\(index)]", inJunctor: true)
                }
            }
        }
        if type == "object" {
            if members["properties"] != nil, members["additionalProperties"] != nil {
                problems.append("\(path): properties together with additionalProperties")
            }
            if case .bool? = members["additionalProperties"] {
                problems.append("\(path): additionalProperties is a boolean")
            }
        }
        if type == "array" && members["items"] == nil { problems.append("\(path): an array without items") }
        if let listType = members["x-kubernetes-list-type"]?.text {
            if listType == "map" {
                let required = Set((members["items"]?["required"]?.items ?? []).compactMap(\.text))
                for key in (members["x-kubernetes-list-map-keys"]?.items ?? []).compactMap(\.text) where !required.contains(key) {
                    problems.append("\(path): list map key '\(key)' is not required")
                }
            } else if listType == "set", let itemType = members["items"]?["type"]?.text, itemType == "object" || itemType == "array" {
                problems.append("\(path): a set of \(itemType)s")
            }
        }
    }
    if let not = members["not"] { problems += structuralProblems(not, path: "\(path).not", inJunctor: true) }
    for (name, child) in members["properties"]?.members ?? [:] {
        problems += structuralProblems(child, path: "\(path).\(name)")
    }
    if let items = members["items"] { problems += structuralProblems(items, path: "\(path)[]") }
    if case .object? = members["additionalProperties"], let values = members["additionalProperties"] {
        problems += structuralProblems(values, path: "\(path).*")
    }
    return problems
}

/// Every CEL rule under `node`.
private func rules(_ node: JSONValue) -> [String] {
    var found = (node["x-kubernetes-validations"]?.items ?? []).compactMap { $0["rule"]?.text }
    for child in node.members.values { found += rules(child) }
    for child in node.items { found += rules(child) }
    return found
}

@Suite("Connector CRD")
struct CRDTests {
    static var committedPath: String { repository + "/deploy/crd.yaml" }

    @Test func committedCRDIsWhatTheBinaryGenerates() throws {
        let committed = try String(contentsOfFile: Self.committedPath, encoding: .utf8)
        let binary = try #require(
            switchyardBinary(), "no switchyard binary next to the tests; build with `swift build --build-tests`, or set SWITCHYARD_BIN")
        let (output, status) = try run(binary, ["crd"])
        #expect(status == 0)
        #expect(
            output == committed,
            "deploy/crd.yaml is out of date: regenerate it with `swift run switchyard crd > deploy/crd.yaml` (default traits)")
    }

    @Test func committedCRDIsStructuralWithEveryFamily() throws {
        let crd = try parseYAML(String(contentsOfFile: Self.committedPath, encoding: .utf8))
        let version = try #require(crd.at("spec.versions")?.items.first)
        let schema = try #require(version.at("schema.openAPIV3Schema"))
        let problems = structuralProblems(schema, path: "openAPIV3Schema")
        #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))")
        // Every connector family of a default build is in it.
        let targets = try #require(schema.at("properties.spec.properties.targets.items.properties"))
        for kind in ["file", "drop", "stdout", "kafka", "rabbitmq", "redis", "postgres", "s3"] {
            #expect(targets[kind] != nil, "target kind \(kind)")
        }
        let sources = try #require(schema.at("properties.spec.properties.sources.items.properties"))
        for kind in ["generate", "kafka", "rabbitmq"] {
            #expect(sources[kind] != nil, "source kind \(kind)")
        }
        #expect(!crd.yaml().contains("$ref"))
    }

    @Test func generatedSchemaIsStructural() {
        let schema = builtinCRD.openAPIV3Schema()
        let problems = structuralProblems(schema, path: "openAPIV3Schema")
        #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))")
        // Only restrictions on metadata.name are allowed: none here.
        #expect(schema.at("properties.metadata") == .object(["type": .string("object")]))
        #expect(schema["required"] == .array([.string("spec")]))
    }

    @Test func theCheckerFindsWhatKubernetesRefuses() {
        let bad: JSONValue = .object([
            "type": .string("object"),
            "additionalProperties": .bool(false),
            "properties": .object([
                "a": .object([
                    "anyOf": .array([.object(["type": .string("integer")]), .object(["type": .string("string"), "pattern": .string("x")])])
                ]),
                "b": .object(["$ref": .string("#/defs/b")]),
                "c": .object(["type": .string("string"), "default": .string("x")]),
            ]),
        ])
        let problems = structuralProblems(bad, path: "root")
        #expect(problems.contains("root: additionalProperties is a boolean"))
        #expect(problems.contains("root: properties together with additionalProperties"))
        #expect(problems.contains("root.a: no type"))
        #expect(problems.contains("root.b: keyword '$ref' is not allowed in a CRD schema"))
        #expect(problems.contains("root.c: has a default"))
    }

    @Test func namesScopeAndVersion() throws {
        let crd = builtinCRD.document()
        #expect(crd["apiVersion"] == .string("apiextensions.k8s.io/v1"))
        #expect(crd["kind"] == .string("CustomResourceDefinition"))
        #expect(crd.at("metadata.name") == .string("connectors.switchyard.dev"))
        #expect(crd.at("spec.group") == .string("switchyard.dev"))
        #expect(crd.at("spec.scope") == .string("Namespaced"))
        #expect(crd.at("spec.names.kind") == .string("Connector"))
        #expect(crd.at("spec.names.plural") == .string("connectors"))
        #expect(crd.at("spec.names.singular") == .string("connector"))
        #expect(crd.at("spec.names.shortNames") == .array([.string("syc")]))
        let versions = try #require(crd.at("spec.versions")?.items)
        #expect(versions.count == 1)
        #expect(versions[0]["name"] == .string("v1alpha1"))
        #expect(versions[0]["served"] == .bool(true))
        #expect(versions[0]["storage"] == .bool(true))
    }

    @Test func statusAndScaleSubresources() throws {
        let version = try #require(builtinCRD.document().at("spec.versions")?.items.first)
        #expect(version.at("subresources.status") == .object([:]))
        #expect(version.at("subresources.scale.specReplicasPath") == .string(".spec.deployment.replicas"))
        #expect(version.at("subresources.scale.statusReplicasPath") == .string(".status.replicas"))
        #expect(version.at("subresources.scale.labelSelectorPath") == .string(".status.selector"))
        // The scale subresource writes an integer there: no ${...} reference allowed.
        let replicas = try #require(version.at("schema.openAPIV3Schema.properties.spec.properties.deployment.properties.replicas"))
        #expect(replicas["type"] == .string("integer"))
        #expect(replicas["x-kubernetes-int-or-string"] == nil)

        let status = try #require(version.at("schema.openAPIV3Schema.properties.status.properties"))
        for field in ["observedGeneration", "runningGeneration", "replicas", "readyReplicas"] {
            #expect(status[field]?["type"] == .string("integer"), "status.\(field)")
        }
        #expect(status["selector"]?["type"] == .string("string"))
        let conditions = try #require(status["conditions"])
        #expect(conditions["x-kubernetes-list-type"] == .string("map"))
        #expect(conditions["x-kubernetes-list-map-keys"] == .array([.string("type")]))
        let condition = try #require(conditions.at("items.properties"))
        #expect(Set(condition.members.keys) == ["type", "status", "reason", "message", "lastTransitionTime", "observedGeneration"])
        #expect(condition.at("lastTransitionTime.format") == .string("date-time"))
    }

    @Test func printerColumns() throws {
        let version = try #require(builtinCRD.document().at("spec.versions")?.items.first)
        let columns = try #require(version["additionalPrinterColumns"]?.items)
        let byName = Dictionary(uniqueKeysWithValues: columns.map { ($0["name"]?.text ?? "", $0) })
        #expect(columns.compactMap { $0["name"]?.text } == ["State", "Ready", "Replicas", "Idle", "Age"])
        #expect(byName["State"]?["jsonPath"] == .string(".spec.state"))
        #expect(byName["Ready"]?["jsonPath"] == .string(".status.conditions[?(@.type==\"Ready\")].status"))
        #expect(byName["Replicas"]?["jsonPath"] == .string(".status.readyReplicas"))
        #expect(byName["Replicas"]?["type"] == .string("integer"))
        #expect(byName["Idle"]?["jsonPath"] == .string(".status.idleReplicas"))
        #expect(byName["Age"]?["jsonPath"] == .string(".metadata.creationTimestamp"))
        #expect(byName["Age"]?["type"] == .string("date"))
    }

    @Test func celRulesForWhatTheSchemaCannotSay() throws {
        let spec = builtinCRD.spec()
        let specRules = (spec["x-kubernetes-validations"]?.items ?? []).compactMap { $0["rule"]?.text }
        #expect(specRules.contains("self.routes.all(r, r.from.all(f, self.sources.exists(s, s.name == f)))"))
        #expect(specRules.contains("self.routes.all(r, r.to.all(t, self.targets.exists(e, e.name == t)))"))
        #expect(specRules.contains { $0.contains("self.delivery.deadLetter") && $0.contains("self.targets.exists") })
        #expect(specRules.contains { $0.hasPrefix("self.sources.all(") }, "every source in a route")
        #expect(specRules.contains { $0.hasPrefix("self.targets.all(") }, "every target in a route or the dead-letter target")
        for rule in spec["x-kubernetes-validations"]?.items ?? [] {
            #expect(rule["message"]?.text?.isEmpty == false)
        }

        // Exactly one connector kind per entry, naming every kind of the registry.
        let sourceRules = try #require(spec.at("properties.sources.items.x-kubernetes-validations")?.items)
        #expect(sourceRules.first?["rule"] == .string("(has(self.generate) ? 1 : 0) == 1"))
        let targetRule = try #require(spec.at("properties.targets.items.x-kubernetes-validations")?.items.first?["rule"]?.text)
        #expect(targetRule == "(has(self.stdout) ? 1 : 0) + (has(self.file) ? 1 : 0) + (has(self.drop) ? 1 : 0) == 1")
        // Options that exclude each other.
        let generateRules = try #require(spec.at("properties.sources.items.properties.generate.x-kubernetes-validations")?.items)
        #expect(generateRules.first?["rule"] == .string("(has(self.size) ? 1 : 0) + (has(self.value) ? 1 : 0) <= 1"))
    }

    @Test func celRulesAreBoundedForTheCostEstimate() throws {
        let spec = builtinCRD.spec()
        let limit = JSONValue.int(DocumentSchema.Limits.entries)
        for list in ["sources", "targets", "routes"] {
            #expect(spec.at("properties.\(list).maxItems") == limit, "\(list)")
            #expect(spec.at("properties.\(list).minItems") == .int(1), "\(list)")
        }
        for list in ["from", "to"] {
            #expect(spec.at("properties.routes.items.properties.\(list).maxItems") == limit)
            #expect(spec.at("properties.routes.items.properties.\(list).x-kubernetes-list-type") == .string("set"))
            #expect(spec.at("properties.routes.items.properties.\(list).items.maxLength") == .int(DocumentSchema.Limits.nameLength))
        }
        for list in ["sources", "targets"] {
            #expect(spec.at("properties.\(list).x-kubernetes-list-type") == .string("map"), "names are unique")
            #expect(spec.at("properties.\(list).x-kubernetes-list-map-keys") == .array([.string("name")]))
            #expect(spec.at("properties.\(list).items.properties.name.maxLength") == .int(DocumentSchema.Limits.nameLength))
        }
        #expect(spec.at("properties.delivery.properties.deadLetter.maxLength") == .int(DocumentSchema.Limits.nameLength))
    }

    @Test func committedCRDHasTheRulesOfEveryFamily() throws {
        let crd = try parseYAML(String(contentsOfFile: Self.committedPath, encoding: .utf8))
        let found = rules(crd)
        let sourceKinds = ["generate", "kafka", "rabbitmq", "link"]
        #expect(
            found.contains { rule in
                rule.hasSuffix("== 1") && rule.hasPrefix("(has(self.generate)")
                    && sourceKinds.allSatisfy { rule.contains("has(self.\($0))") }
            })
        #expect(found.contains { $0.contains("has(self.s3)") && $0.contains("has(self.postgres)") && $0.hasSuffix("== 1") })
        #expect(found.contains("(has(self.accessKeyId) ? 1 : 0) + (has(self.profile) ? 1 : 0) <= 1"))
        for rule in CRDGenerator.specRules.compactMap({ $0["rule"]?.text }) {
            #expect(found.contains(rule))
        }
    }

    @Test func valueTypesKubernetesCanHold() throws {
        let spec = builtinCRD.spec()
        // An integer option also takes a ${...} reference.
        let parallelism = try #require(spec.at("properties.targets.items.properties.parallelism"))
        #expect(parallelism["x-kubernetes-int-or-string"] == .bool(true))
        #expect(parallelism["minimum"] == .int(1))
        #expect(parallelism["maximum"] == .int(256))
        #expect(parallelism["pattern"] != nil)
        // Sizes: integers or text such as 1MiB; durations: text, or the integer 0.
        #expect(spec.at("properties.batching.properties.maxBytes.x-kubernetes-int-or-string") == .bool(true))
        #expect(spec.at("properties.batching.properties.maxDelay.maximum") == .int(0))
        // Booleans are literal in a custom resource.
        #expect(spec.at("properties.targets.items.properties.file.properties.fsync.type") == .string("boolean"))
        // Kubernetes structures are objects and lists whose members Kubernetes checks.
        #expect(spec.at("properties.deployment.properties.env.type") == .string("array"))
        #expect(spec.at("properties.deployment.properties.env.items.x-kubernetes-preserve-unknown-fields") == .bool(true))
        #expect(spec.at("properties.deployment.properties.resources.type") == .string("object"))
        #expect(spec.at("properties.deployment.properties.nodeSelector.additionalProperties") == .object(["type": .string("string")]))
        #expect(spec.at("properties.state.enum") == .array([.string("running"), .string("paused"), .string("stopped")]))
        // Defaults are the runtime's, stated in the description, not stored by Kubernetes.
        #expect(spec.at("properties.targets.items.properties.parallelism.description")?.text?.contains("(default: 1)") == true)
    }

    @Test func jsonSchemaDialectIsUnchanged() {
        let schema = JSONSchemaGenerator(registry: ConnectorRegistry([BuiltinConnectors.family])).object(DocumentSchema.spec)
        #expect(schema["additionalProperties"] == .bool(false))
        #expect(schema.at("properties.targets.items.oneOf") != nil)
        #expect(
            schema.at("properties.sources.items.properties.generate.not")
                == .object(["required": .array([.string("size"), .string("value")])]))
        #expect(schema.at("properties.targets.items.properties.parallelism.default") == .int(1))
    }

    @Test func celNamesAreEscapedAsKubernetesDoes() {
        #expect(JSONSchemaGenerator.celName("kafka") == "kafka")
        #expect(JSONSchemaGenerator.celName("a.b-c") == "a__dot__b__dash__c")
        #expect(JSONSchemaGenerator.celName("in") == "__in__")
        #expect(JSONSchemaGenerator.celName("a__b") == "a__underscores__b")
    }

    @Test func yamlRoundTrips() throws {
        let value: JSONValue = .object([
            "plain": .string("abc"), "spaced": .string("a: b # c"), "word": .string("true"), "number": .string("10"),
            "empty": .string(""), "list": .array([.object(["a": .int(1), "b": .array([.string("x")])]), .string("y")]),
            "nested": .object(["flag": .bool(false), "none": .object([:]), "nothing": .array([])]),
            "escaped": .string("quote \" backslash \\ newline \n"),
        ])
        #expect(try parseYAML(value.yaml()) == value)
    }
}

@Suite("Limits and deployment fields in the validator")
struct DocumentLimitTests {
    @Test func moreEntriesThanTheCRDAllowsAreRejected() throws {
        let count = DocumentSchema.Limits.entries + 1
        let sources = (0..<count).map { "  - {name: s\($0), generate: {count: 1}}" }.joined(separator: "\n")
        let issues = try loadInvalid(
            """
            sources:
            \(sources)
            targets:
              - {name: out, drop: {}}
            routes:
              - from: [\((0..<count).map { "s\($0)" }.joined(separator: ", "))]
                to: [out]
            """)
        #expect(
            issues.contains { $0.path == "spec.sources" && $0.message.contains("at most \(DocumentSchema.Limits.entries)") }, "\(issues)")
    }

    @Test func namesLongerThanTheCRDAllowsAreRejected() throws {
        let long = String(repeating: "n", count: DocumentSchema.Limits.nameLength + 1)
        let issues = try loadInvalid(
            """
            sources:
              - {name: \(long), generate: {count: 1}}
            targets:
              - {name: out, drop: {}}
            routes:
              - {name: \(long), from: [\(long)], to: [out]}
            """)
        #expect(issues.contains { $0.path == "spec.sources[0].name" && $0.message.contains("longer than") }, "\(issues)")
        #expect(issues.contains { $0.path == "spec.routes[0].name" && $0.message.contains("longer than") }, "\(issues)")
    }

    @Test func deploymentTakesKubernetesStructures() throws {
        let document = try loadValid(
            minimalSpec + """

                state: stopped
                deployment:
                  replicas: 3
                  image: registry.example/switchyard:1
                  serviceAccountName: connectors
                  resources: {requests: {cpu: 100m, memory: 128Mi}, limits: {memory: 512Mi}}
                  env:
                    - {name: PGPASSWORD, valueFrom: {secretKeyRef: {name: pg, key: password}}}
                  envFrom: [{secretRef: {name: kafka-credentials}}]
                  nodeSelector: {kubernetes.io/arch: amd64}
                  tolerations: [{key: dedicated, operator: Equal, value: connectors, effect: NoSchedule}]
                  affinity: {podAntiAffinity: {preferredDuringSchedulingIgnoredDuringExecution: []}}
                """)
        #expect(document.state == "stopped")
        #expect(document.spec.object("deployment")?.int("replicas") == 3)
    }

    @Test func deploymentStructuresHaveTheirShape() throws {
        let issues = try loadInvalid(
            minimalSpec + """

                deployment:
                  env: PGPASSWORD=x
                  resources: [cpu]
                  replicas: -1
                """)
        #expect(issues.contains { $0.path == "spec.deployment.env" }, "\(issues)")
        #expect(issues.contains { $0.path == "spec.deployment.resources" }, "\(issues)")
        #expect(issues.contains { $0.path == "spec.deployment.replicas" }, "\(issues)")
    }
}
