import SwitchyardCore

/// Generates the JSON Schema of documents from the same model the validator uses.
///
/// Integers, durations, sizes and choices among words also accept a string holding a
/// `${env:...}` or `${file:...}` reference, since references are resolved after parsing;
/// booleans and numbers do not, since a Kubernetes structural schema cannot say "a boolean or a
/// reference", and the validator refuses references there too (one document, two homes).
///
/// The same walk over the model has two dialects: plain JSON Schema (`switchyard schema`), and
/// the structural OpenAPI subset that a Kubernetes CustomResourceDefinition accepts (used by
/// ``CRDGenerator``): every node typed, no `additionalProperties: false` (the API server prunes
/// unknown fields, and strict field validation reports them), integer-or-reference values as
/// `x-kubernetes-int-or-string`, open maps as `x-kubernetes-preserve-unknown-fields`, and what
/// the subset cannot say (one connector kind per entry, mutually exclusive options) as CEL
/// rules in `x-kubernetes-validations`.
public struct JSONSchemaGenerator: Sendable {
    public enum Dialect: Sendable {
        /// JSON Schema draft 2020-12.
        case jsonSchema
        /// A Kubernetes structural schema (apiextensions.k8s.io/v1 `openAPIV3Schema`).
        case kubernetes
    }

    public var registry: ConnectorRegistry
    public var dialect: Dialect
    /// Whether non-string options also accept a `${env:...}`/`${file:...}` reference.
    public var allowsReferences: Bool
    /// Whether strings refuse a reference too (under a field written literally, ``OptionField/literal``).
    var literalStrings = false

    public init(registry: ConnectorRegistry, dialect: Dialect = .jsonSchema, allowsReferences: Bool = true) {
        self.registry = registry
        self.dialect = dialect
        self.allowsReferences = allowsReferences
    }

    var kubernetes: Bool { dialect == .kubernetes }

    /// The schema of a whole document: a Connector resource, or its spec alone.
    public func document() -> JSONValue {
        .object([
            "$schema": .string("https://json-schema.org/draft/2020-12/schema"),
            "$id": .string("https://switchyard.dev/schemas/connector-v1alpha1.json"),
            "title": .string("Switchyard Connector"),
            "description": .string("A Switchyard connector document: a whole Connector custom resource, or just its spec."),
            "oneOf": .array([object(DocumentSchema.resource), object(DocumentSchema.spec)]),
        ])
    }

    public func object(_ schema: ObjectSchema) -> JSONValue {
        var properties: [String: JSONValue] = [:]
        for field in schema.fields {
            properties[field.name] = property(field)
        }
        var result: [String: JSONValue] = [
            "type": .string("object"),
            "properties": .object(properties),
        ]
        if !kubernetes { result["additionalProperties"] = .bool(false) }
        let required = schema.fields.filter(\.required).map { JSONValue.string($0.name) }
        if !required.isEmpty { result["required"] = .array(required) }
        if !schema.doc.isEmpty { result["description"] = .string(schema.doc) }
        if kubernetes {
            let rules = schema.exclusive.map { group in
                Self.rule(
                    Self.countOf(group) + " <= 1",
                    message: "set at most one of: \(group.joined(separator: ", "))")
            }
            if !rules.isEmpty { result["x-kubernetes-validations"] = .array(rules) }
        } else if !schema.exclusive.isEmpty {
            let groups = schema.exclusive.map { group in
                JSONValue.object(["not": .object(["required": .array(group.map(JSONValue.string))])])
            }
            if groups.count == 1, case .object(let only) = groups[0] {
                result["not"] = only["not"]
            } else {
                result["allOf"] = .array(groups)
            }
        }
        return .object(result)
    }

    func property(_ field: OptionField) -> JSONValue {
        if field.literal && (allowsReferences || !literalStrings) {
            var literal = self
            literal.allowsReferences = false
            literal.literalStrings = true
            return literal.property(field)
        }
        guard case .object(var members) = type(field.type) else { return type(field.type) }
        if kubernetes {
            // Kubernetes would store a default in every resource; the runtime applies its own.
            var doc = field.doc
            if let value = field.defaultValue, !value.isEmpty { doc += " (default: \(value))" }
            members["description"] = .string(doc)
        } else {
            members["description"] = .string(field.doc)
            if let value = field.defaultValue { members["default"] = defaultValue(value, field.type) }
        }
        return .object(members)
    }

    func defaultValue(_ text: String, _ type: OptionType) -> JSONValue {
        switch type {
        case .int: Int(text).map(JSONValue.int) ?? .string(text)
        case .bool: .bool(text == "true")
        case .number: Double(text).map(JSONValue.number) ?? .string(text)
        default: .string(text)
        }
    }

    /// Text holding a `${env:...}` or `${file:...}` reference (not escaped as `$${`).
    static let referencePattern = "(^|[^$])\\$\\{(env|file):[^}]*\\}"
    static let reference: JSONValue = .object(["type": .string("string"), "pattern": .string(referencePattern)])
    static let namePattern = "^[A-Za-z0-9._-]+$"
    static let literalDurationPattern = "^(0|([0-9]+(\\.[0-9]+)?(ns|us|ms|s|m|h|d))+)$"
    static let literalSizePattern = "^([0-9]+(\\.[0-9]+)?\\s*(B|KB|kB|MB|GB|KiB|MiB|GiB)?)$"
    static let durationPattern = literalDurationPattern + "|" + referencePattern
    static let sizePattern = literalSizePattern + "|" + referencePattern
    var durationPattern: String { allowsReferences ? Self.durationPattern : Self.literalDurationPattern }
    var sizePattern: String { allowsReferences ? Self.sizePattern : Self.literalSizePattern }

    /// A Kubernetes node that holds an integer or a string (`x-kubernetes-int-or-string`);
    /// `minimum`/`maximum` constrain the integers and `pattern` the strings.
    static func intOrString(minimum: Int? = nil, maximum: Int? = nil, pattern: String?) -> [String: JSONValue] {
        var node: [String: JSONValue] = [
            "x-kubernetes-int-or-string": .bool(true),
            "anyOf": .array([.object(["type": .string("integer")]), .object(["type": .string("string")])]),
        ]
        if let minimum { node["minimum"] = .int(minimum) }
        if let maximum { node["maximum"] = .int(maximum) }
        if let pattern { node["pattern"] = .string(pattern) }
        return node
    }

    func type(_ type: OptionType) -> JSONValue {
        switch type {
        case .string, .secret:
            if literalStrings { return .object(["type": .string("string"), "not": .object(["pattern": .string(Self.referencePattern)])]) }
            return .object(["type": .string("string")])
        case .name:
            var node: [String: JSONValue] = ["type": .string("string"), "pattern": .string(Self.namePattern)]
            if kubernetes { node["maxLength"] = .int(DocumentSchema.Limits.nameLength) }
            return .object(node)
        case .template:
            if kubernetes { return .object(["type": .string("string")]) }
            return .object(["type": .string("string"), "x-switchyard-template": .bool(true)])
        case .bool:
            // Kubernetes has no boolean-or-string: booleans are written literally everywhere.
            return .object(["type": .string("boolean")])
        case .int(let minimum, let maximum):
            var integer: [String: JSONValue] = ["type": .string("integer")]
            if let minimum { integer["minimum"] = .int(minimum) }
            if let maximum { integer["maximum"] = .int(maximum) }
            if !allowsReferences { return .object(integer) }
            if kubernetes { return .object(Self.intOrString(minimum: minimum, maximum: maximum, pattern: Self.referencePattern)) }
            return .object(["anyOf": .array([.object(integer), Self.reference])])
        case .number:
            // Nor number-or-string (int-or-string refuses fractions): numbers are literal too.
            return .object(["type": .string("number")])
        case .duration:
            // A bare 0 is a duration too; in Kubernetes it arrives as the integer 0.
            if kubernetes { return .object(Self.intOrString(minimum: 0, maximum: 0, pattern: durationPattern)) }
            return .object(["type": .string("string"), "pattern": .string(durationPattern)])
        case .size:
            if kubernetes { return .object(Self.intOrString(minimum: 0, pattern: sizePattern)) }
            return .object([
                "anyOf": .array([
                    .object(["type": .string("integer"), "minimum": .int(0)]),
                    .object(["type": .string("string"), "pattern": .string(sizePattern)]),
                ])
            ])
        case .choice(let options):
            let numeric = options.compactMap { Int($0) }
            if kubernetes && !numeric.isEmpty {
                // `acks: 1` arrives as an integer once YAML becomes JSON.
                var node = Self.intOrString(pattern: nil)
                node["enum"] = .array(options.map(JSONValue.string) + numeric.map(JSONValue.int))
                return .object(node)
            }
            let words: JSONValue = .array(options.map(JSONValue.string))
            if !allowsReferences || !numeric.isEmpty { return .object(["type": .string("string"), "enum": words]) }
            // One of the words, or a reference resolved to one of them when the document loads.
            return .object([
                "type": .string("string"),
                "anyOf": .array([.object(["enum": words]), .object(["pattern": .string(Self.referencePattern)])]),
            ])
        case .list(let element):
            var node: [String: JSONValue] = ["type": .string("array"), "items": self.type(element)]
            if kubernetes {
                switch element {
                case .name: node["x-kubernetes-list-type"] = .string("set")
                case .connector:
                    node["x-kubernetes-list-type"] = .string("map")
                    node["x-kubernetes-list-map-keys"] = .array([.string("name")])
                default: break
                }
            }
            return .object(node)
        case .map(let element):
            if kubernetes {
                switch element {
                case .string, .secret, .any:
                    // An open map (librdkafka properties, queue arguments): YAML authors write
                    // numbers and booleans unquoted there, so its values are kept as written.
                    return .object(["type": .string("object"), "x-kubernetes-preserve-unknown-fields": .bool(true)])
                default: break
                }
            }
            return .object(["type": .string("object"), "additionalProperties": self.type(element)])
        case .object(let schema):
            return object(schema)
        case .connector(let role):
            return connector(role)
        case .any:
            return .object(["x-kubernetes-preserve-unknown-fields": .bool(true)])
        }
    }

    /// A source or target entry: `name`, the common fields, and exactly one connector kind.
    func connector(_ role: ConnectorRole) -> JSONValue {
        let kinds = registry.decoderKinds[role] ?? []
        let common = role == .target ? DocumentSchema.targetCommon : DocumentSchema.sourceCommon
        var name: [String: JSONValue] = [
            "type": .string("string"), "pattern": .string(Self.namePattern), "description": .string("entry name, used by routes"),
        ]
        if kubernetes { name["maxLength"] = .int(DocumentSchema.Limits.nameLength) }
        var properties: [String: JSONValue] = ["name": .object(name)]
        for field in common.fields { properties[field.name] = property(field) }
        for kind in kinds { properties[kind.kind] = object(kind.schema) }
        var result: [String: JSONValue] = [
            "type": .string("object"),
            "description": .string("a \(role.rawValue): name plus exactly one of \(kinds.map(\.kind).joined(separator: ", "))"),
            "properties": .object(properties),
            "required": .array([.string("name")]),
        ]
        if kubernetes {
            result["x-kubernetes-validations"] = .array([
                Self.rule(
                    Self.countOf(kinds.map(\.kind)) + " == 1",
                    message:
                        "a \(role.rawValue) entry holds exactly one connector kind (one of: \(kinds.map(\.kind).joined(separator: ", ")))")
            ])
        } else {
            result["additionalProperties"] = .bool(false)
            result["oneOf"] = .array(kinds.map { .object(["required": .array([.string($0.kind)])]) })
        }
        return .object(result)
    }

    // MARK: CEL

    /// An `x-kubernetes-validations` entry.
    public static func rule(_ expression: String, message: String, fieldPath: String? = nil) -> JSONValue {
        var members: [String: JSONValue] = ["rule": .string(expression), "message": .string(message)]
        if let fieldPath { members["fieldPath"] = .string(fieldPath) }
        return .object(members)
    }

    /// CEL counting how many of `fields` are set on `self`.
    static func countOf(_ fields: [String]) -> String {
        if fields.isEmpty { return "0" }
        return fields.map { "(has(self.\(celName($0))) ? 1 : 0)" }.joined(separator: " + ")
    }

    static let celReserved: Set<String> = [
        "true", "false", "null", "in", "as", "break", "const", "continue", "else", "for", "function", "if",
        "import", "let", "loop", "package", "namespace", "return", "var", "void", "while",
    ]

    /// A property name as Kubernetes exposes it to CEL (`__dot__`, `__dash__`, `__in__` ...).
    public static func celName(_ name: String) -> String {
        if celReserved.contains(name) { return "__\(name)__" }
        var result = ""
        var rest = Substring(name)
        while let first = rest.first {
            if rest.hasPrefix("__") {
                result += "__underscores__"
                rest = rest.dropFirst(2)
                continue
            }
            switch first {
            case ".": result += "__dot__"
            case "-": result += "__dash__"
            case "/": result += "__slash__"
            default: result.append(first)
            }
            rest = rest.dropFirst()
        }
        return result
    }
}
