import SwitchyardCore

/// Generates the JSON Schema of documents from the same model the validator uses.
///
/// Non-string options also accept a string holding a `${...}` reference, since references are
/// resolved after parsing.
public struct JSONSchemaGenerator: Sendable {
    public var registry: ConnectorRegistry

    public init(registry: ConnectorRegistry) {
        self.registry = registry
    }

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
            "additionalProperties": .bool(false),
        ]
        let required = schema.fields.filter(\.required).map { JSONValue.string($0.name) }
        if !required.isEmpty { result["required"] = .array(required) }
        if !schema.doc.isEmpty { result["description"] = .string(schema.doc) }
        for group in schema.exclusive {
            result["not"] = .object(["required": .array(group.map(JSONValue.string))])
        }
        return .object(result)
    }

    func property(_ field: OptionField) -> JSONValue {
        guard case .object(var members) = type(field.type) else { return type(field.type) }
        members["description"] = .string(field.doc)
        if let value = field.defaultValue { members["default"] = defaultValue(value, field.type) }
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

    static let reference: JSONValue = .object(["type": .string("string"), "pattern": .string("\\$\\{(env|file):")])

    func type(_ type: OptionType) -> JSONValue {
        switch type {
        case .string, .secret:
            return .object(["type": .string("string")])
        case .name:
            return .object(["type": .string("string"), "pattern": .string("^[A-Za-z0-9._-]+$")])
        case .template:
            return .object(["type": .string("string"), "x-switchyard-template": .bool(true)])
        case .bool:
            return .object(["anyOf": .array([.object(["type": .string("boolean")]), Self.reference])])
        case .int(let minimum, let maximum):
            var integer: [String: JSONValue] = ["type": .string("integer")]
            if let minimum { integer["minimum"] = .int(minimum) }
            if let maximum { integer["maximum"] = .int(maximum) }
            return .object(["anyOf": .array([.object(integer), Self.reference])])
        case .number:
            return .object(["anyOf": .array([.object(["type": .string("number")]), Self.reference])])
        case .duration:
            return .object(["type": .string("string"), "pattern": .string("^(0|([0-9]+(\\.[0-9]+)?(ns|us|ms|s|m|h|d))+|\\$\\{.*\\})$")])
        case .size:
            return .object(["anyOf": .array([
                .object(["type": .string("integer"), "minimum": .int(0)]),
                .object(["type": .string("string"), "pattern": .string("^([0-9]+(\\.[0-9]+)?\\s*(B|KB|kB|MB|GB|KiB|MiB|GiB)?|\\$\\{.*\\})$")]),
            ])])
        case .choice(let options):
            return .object(["type": .string("string"), "enum": .array(options.map(JSONValue.string))])
        case .list(let element):
            return .object(["type": .string("array"), "items": self.type(element)])
        case .map(let element):
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
        var properties: [String: JSONValue] = ["name": .object(["type": .string("string"), "pattern": .string("^[A-Za-z0-9._-]+$"), "description": .string("entry name, used by routes")])]
        for field in common.fields { properties[field.name] = property(field) }
        for kind in kinds { properties[kind.kind] = object(kind.schema) }
        return .object([
            "type": .string("object"),
            "description": .string("a \(role.rawValue): name plus exactly one of \(kinds.map(\.kind).joined(separator: ", "))"),
            "properties": .object(properties),
            "additionalProperties": .bool(false),
            "required": .array([.string("name")]),
            "oneOf": .array(kinds.map { .object(["required": .array([.string($0.kind)])]) }),
        ])
    }
}
