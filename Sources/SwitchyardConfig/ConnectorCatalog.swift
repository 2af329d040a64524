import SwitchyardCore

/// The option list of every compiled-in connector (`switchyard connectors`), from the model.
public struct ConnectorCatalog: Sendable {
    public var registry: ConnectorRegistry

    public init(registry: ConnectorRegistry) {
        self.registry = registry
    }

    public func text() -> String {
        var lines: [String] = []
        for family in registry.families {
            lines.append("family \(family.name): \(family.summary)")
            for note in family.notes { lines.append("  note: \(note)") }
            for kind in family.sources {
                lines.append("  source \(kind.kind): \(kind.summary)")
                describe(kind.options, indent: "    ", into: &lines)
            }
            for kind in family.targets {
                lines.append("  target \(kind.kind): \(kind.summary)")
                describe(kind.options, indent: "    ", into: &lines)
            }
            lines.append("")
        }
        lines.append("every target entry also takes:")
        describe(DocumentSchema.targetCommon, indent: "    ", into: &lines)
        return lines.joined(separator: "\n")
    }

    func describe(_ schema: ObjectSchema, indent: String, into lines: inout [String]) {
        for field in schema.fields {
            var line = "\(indent)\(field.name) (\(field.type.displayName)"
            if field.required { line += ", required" }
            if let value = field.defaultValue { line += ", default \(value)" }
            line += "): \(field.doc)"
            lines.append(line)
            if case .object(let nested) = field.type { describe(nested, indent: indent + "  ", into: &lines) }
        }
        for group in schema.exclusive {
            lines.append("\(indent)(set at most one of: \(group.joined(separator: ", ")))")
        }
    }

    public func json() -> JSONValue {
        .array(
            registry.families.map { family in
                .object([
                    "family": .string(family.name),
                    "summary": .string(family.summary),
                    "notes": .array(family.notes.map(JSONValue.string)),
                    "sources": .array(family.sources.map { kind($0.kind, $0.summary, $0.options) }),
                    "targets": .array(family.targets.map { kind($0.kind, $0.summary, $0.options) }),
                ])
            })
    }

    func kind(_ name: String, _ summary: String, _ schema: ObjectSchema) -> JSONValue {
        .object([
            "kind": .string(name),
            "summary": .string(summary),
            "options": .array(
                schema.fields.map { field in
                    var members: [String: JSONValue] = [
                        "name": .string(field.name), "type": .string(field.type.displayName),
                        "required": .bool(field.required), "doc": .string(field.doc),
                    ]
                    if let value = field.defaultValue { members["default"] = .string(value) }
                    return .object(members)
                }),
        ])
    }
}
