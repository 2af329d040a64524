/// Checks a document node against an ``OptionType`` and builds validated values.
///
/// Every problem is collected (not just the first), each with its path and line. Error messages
/// quote the text as written in the document, never an interpolated value, and never the value
/// of a `secret` option.
public struct OptionDecoder {
    /// The option schema of each registered connector kind, per role.
    public var connectorKinds: [ConnectorRole: [(kind: String, schema: ObjectSchema, validate: ConnectorValidator?)]]
    /// Fields every entry of a role may hold besides `name` and its kind.
    public var commonFields: [ConnectorRole: ObjectSchema]
    public private(set) var issues: [ConfigIssue] = []

    public init(
        connectorKinds: [ConnectorRole: [(kind: String, schema: ObjectSchema, validate: ConnectorValidator?)]],
        commonFields: [ConnectorRole: ObjectSchema] = [:]
    ) {
        self.connectorKinds = connectorKinds
        self.commonFields = commonFields
    }

    public mutating func report(_ path: String, _ line: Int, _ message: String) {
        issues.append(ConfigIssue(path: path, line: line, message: message))
    }

    public mutating func report(_ issue: ConfigIssue) {
        issues.append(issue)
    }

    /// Decodes `node` as an object of `schema` at `path`.
    public mutating func decodeObject(_ node: ConfigNode, _ schema: ObjectSchema, path: String) -> OptionValues? {
        guard case .mapping(let entries) = node.content else {
            if case .null = node.content {
                return decodeEntries([], schema, path: path, line: node.line)
            }
            report(path, node.line, "expected an object, found a \(node.kindName)")
            return nil
        }
        return decodeEntries(entries, schema, path: path, line: node.line)
    }

    mutating func decodeEntries(_ entries: [ConfigNode.Entry], _ schema: ObjectSchema, path: String, line: Int) -> OptionValues? {
        var values = OptionValues(path: path, line: line)
        var seen = Set<String>()
        var valid = true
        for entry in entries {
            let fieldPath = Self.join(path, entry.key)
            guard seen.insert(entry.key).inserted else {
                report(fieldPath, entry.keyLine, "field is set twice")
                valid = false
                continue
            }
            guard let field = schema.field(entry.key) else {
                let known = schema.fields.map(\.name).joined(separator: ", ")
                let hint = Self.suggestion(for: entry.key, among: schema.fields.map(\.name)).map { "; did you mean '\($0)'?" } ?? ""
                report(
                    fieldPath, entry.keyLine,
                    "unknown field \(ConfigText.quoted(entry.key))" + hint + (known.isEmpty ? "" : " (known: \(known))"))
                valid = false
                continue
            }
            values.lines[entry.key] = entry.value.line > 0 ? entry.value.line : entry.keyLine
            if case .null = entry.value.content, !field.required, !isContainer(field.type) {
                continue
            }
            if field.literal {
                let referenced = Self.references(in: entry.value, path: fieldPath)
                for (path, line) in referenced {
                    report(
                        path, line,
                        "is written literally: the operator reads it from the Connector resource, where no ${...} reference is resolved")
                }
                if !referenced.isEmpty {
                    valid = false
                    continue
                }
            }
            if let value = decode(entry.value, as: field.type, path: fieldPath) {
                values.entries[entry.key] = value
                values.explicit.insert(entry.key)
            } else {
                valid = false
            }
        }
        for field in schema.fields where values.entries[field.name] == nil {
            if let text = field.defaultValue {
                let node = ConfigNode(.scalar(.init(text: text, quoted: isStringLike(field.type))), line: line)
                if let value = decode(node, as: field.type, path: Self.join(path, field.name)) {
                    values.entries[field.name] = value
                }
            } else if field.required && !seen.contains(field.name) {
                report(Self.join(path, field.name), line, "required field is missing")
                valid = false
            }
        }
        for group in schema.exclusive {
            let set = group.filter { values.explicit.contains($0) }
            if set.count > 1 {
                report(
                    Self.join(path, set[1]), values.line(of: set[1]),
                    "set only one of \(group.joined(separator: ", ")), not both \(set[0]) and \(set[1])")
                valid = false
            }
        }
        return valid ? values : nil
    }

    func isContainer(_ type: OptionType) -> Bool {
        switch type {
        case .object, .list, .map: true
        default: false
        }
    }

    func isStringLike(_ type: OptionType) -> Bool {
        switch type {
        case .string, .secret, .template, .choice, .name: true
        default: false
        }
    }

    /// Decodes `node` as `type` at `path`; reports and returns nil when it does not fit.
    public mutating func decode(_ node: ConfigNode, as type: OptionType, path: String) -> OptionValue? {
        switch type {
        case .object(let schema):
            return decodeObject(node, schema, path: path).map(OptionValue.object)
        case .list(let element):
            if case .null = node.content { return .list([]) }
            guard case .sequence(let items) = node.content else {
                report(path, node.line, "expected a list, found a \(node.kindName)")
                return nil
            }
            var values: [OptionValue] = []
            var valid = true
            for (index, item) in items.enumerated() {
                if let value = decode(item, as: element, path: "\(path)[\(index)]") { values.append(value) } else { valid = false }
            }
            return valid ? .list(values) : nil
        case .map(let element):
            if case .null = node.content { return .map([]) }
            guard case .mapping(let entries) = node.content else {
                report(path, node.line, "expected an object of names to values, found a \(node.kindName)")
                return nil
            }
            var values: [(key: String, value: OptionValue)] = []
            var valid = true
            var seen = Set<String>()
            for entry in entries {
                let entryPath = "\(path).\(entry.key)"
                guard seen.insert(entry.key).inserted else {
                    report(entryPath, entry.keyLine, "name is set twice")
                    valid = false
                    continue
                }
                if let value = decode(entry.value, as: element, path: entryPath) {
                    values.append((entry.key, value))
                } else {
                    valid = false
                }
            }
            return valid ? .map(values) : nil
        case .connector(let role):
            return decodeConnector(node, role: role, path: path)
        case .any:
            return .node(node)
        default:
            return decodeScalar(node, as: type, path: path)
        }
    }

    mutating func decodeScalar(_ node: ConfigNode, as type: OptionType, path: String) -> OptionValue? {
        guard case .scalar(let scalar) = node.content else {
            report(path, node.line, "expected a \(type.displayName), found a \(node.kindName)")
            return nil
        }
        if scalar.unresolved { return nil }
        let text = scalar.text
        let shown: String = {
            if case .secret = type { return "the value" }
            return ConfigText.quoted(scalar.raw)
        }()
        // A Connector resource holds booleans and numbers as JSON booleans and numbers, so a
        // `${...}` reference, which is text, can stand only where its schema takes text too.
        let referenced = scalar.interpolated || scalar.raw != scalar.text
        if referenced, let kind = Self.literalKind(type) {
            report(
                path, node.line,
                "\(kind) is written literally here; ${...} references are not allowed, since a Connector resource holds this value as JSON, not as text"
            )
            return nil
        }
        switch type {
        case .string, .secret:
            return .string(text)
        case .template:
            do {
                return .template(try Template(text))
            } catch {
                if scalar.interpolated {
                    report(
                        path, node.line,
                        "the template does not compile (character \(error.column)); its text comes from a ${...} reference and is not shown"
                    )
                } else {
                    report(path, node.line, "\(error)")
                }
                return nil
            }
        case .name:
            guard !scalar.interpolated, scalar.raw == text else {
                report(path, node.line, "names are written literally; ${...} references are not allowed here")
                return nil
            }
            guard Self.isValidName(text) else {
                report(path, node.line, "name \(ConfigText.quoted(scalar.raw)) may hold only letters, digits, '-', '_' and '.'")
                return nil
            }
            return .string(text)
        case .bool:
            guard !scalar.quoted else {
                report(path, node.line, "expected a boolean (true or false), found the string \(shown)")
                return nil
            }
            switch text {
            case "true": return .bool(true)
            case "false": return .bool(false)
            default:
                report(path, node.line, "expected a boolean (true or false), found \(shown)")
                return nil
            }
        case .int(let minimum, let maximum):
            guard let value = Int(text) else {
                report(path, node.line, "expected an integer, found \(shown)")
                return nil
            }
            guard !scalar.quoted || referenced else {
                report(path, node.line, "expected an integer, found the string \(shown); write it without quotes")
                return nil
            }
            if let minimum, value < minimum {
                report(path, node.line, "must be at least \(minimum), found \(value)")
                return nil
            }
            if let maximum, value > maximum {
                report(path, node.line, "must be at most \(maximum), found \(value)")
                return nil
            }
            return .int(value)
        case .number:
            guard let value = Double(text), value.isFinite else {
                report(path, node.line, "expected a number, found \(shown)")
                return nil
            }
            guard !scalar.quoted else {
                report(path, node.line, "expected a number, found the string \(shown); write it without quotes")
                return nil
            }
            return .number(value)
        case .duration:
            guard let value = Units.parseDuration(text) else {
                report(path, node.line, "expected a duration such as 250ms, 30s, 5m or 24h, found \(shown)")
                return nil
            }
            return .duration(value)
        case .size:
            guard let value = Units.parseSize(text) else {
                report(path, node.line, "expected a size such as 1048576, 512KiB, 64MiB or 1GB, found \(shown)")
                return nil
            }
            return .size(value)
        case .choice(let options):
            guard options.contains(text) else {
                let hint = scalar.interpolated ? "" : Self.suggestion(for: text, among: options).map { "; did you mean '\($0)'?" } ?? ""
                report(path, node.line, "expected one of \(options.joined(separator: ", ")), found \(shown)\(hint)")
                return nil
            }
            return .string(text)
        case .object, .list, .map, .connector, .any:
            return nil
        }
    }

    mutating func decodeConnector(_ node: ConfigNode, role: ConnectorRole, path: String) -> OptionValue? {
        guard case .mapping(let entries) = node.content else {
            report(path, node.line, "expected a \(role.rawValue) entry (name plus one connector kind), found a \(node.kindName)")
            return nil
        }
        let kinds = connectorKinds[role] ?? []
        let knownKinds = kinds.map(\.kind).sorted().joined(separator: ", ")
        var kindEntries: [ConfigNode.Entry] = []
        var commonEntries: [ConfigNode.Entry] = []
        let common = commonFields[role] ?? ObjectSchema([])
        var valid = true
        var name: String?
        for entry in entries {
            if common.field(entry.key) != nil {
                commonEntries.append(entry)
            } else if entry.key == "name" {
                if case .scalar(let scalar) = entry.value.content, !scalar.text.isEmpty {
                    name = scalar.text
                    if scalar.interpolated || scalar.unresolved {
                        report("\(path).name", entry.keyLine, "names are written literally; ${...} references are not allowed here")
                        valid = false
                    } else if !Self.isValidName(scalar.text) {
                        report(
                            "\(path).name", entry.keyLine,
                            "name \(ConfigText.quoted(scalar.raw)) may hold only letters, digits, '-', '_' and '.'")
                        valid = false
                    }
                } else {
                    report("\(path).name", entry.keyLine, "expected a non-empty name")
                    valid = false
                }
            } else if kinds.contains(where: { $0.kind == entry.key }) {
                kindEntries.append(entry)
            } else {
                let fields = (["name"] + common.fields.map(\.name)).joined(separator: ", ")
                let hint =
                    Self.suggestion(for: entry.key, among: kinds.map(\.kind) + ["name"] + common.fields.map(\.name)).map {
                        "; did you mean '\($0)'?"
                    } ?? ""
                report(
                    "\(path).\(entry.key)", entry.keyLine,
                    "unknown \(role.rawValue) kind or field \(ConfigText.quoted(entry.key))\(hint) (fields: \(fields); kinds in this build: \(knownKinds))"
                )
                valid = false
            }
        }
        if name == nil && !entries.contains(where: { $0.key == "name" }) {
            report("\(path).name", node.line, "required field is missing")
            valid = false
        }
        guard kindEntries.count == 1, let kindEntry = kindEntries.first else {
            if kindEntries.isEmpty {
                if valid { report(path, node.line, "names no \(role.rawValue) kind (one of: \(knownKinds))") }
            } else {
                report(
                    "\(path).\(kindEntries[1].key)", kindEntries[1].keyLine,
                    "a \(role.rawValue) entry holds exactly one connector kind, found \(kindEntries.map(\.key).joined(separator: " and "))")
            }
            return nil
        }
        guard let spec = kinds.first(where: { $0.kind == kindEntry.key }) else { return nil }
        let kindPath = "\(path).\(kindEntry.key)"
        guard var options = decodeObject(kindEntry.value, spec.schema, path: kindPath) else { return nil }
        if options.line == 0 { options.line = kindEntry.keyLine }
        if let validate = spec.validate {
            let found = validate(options)
            issues.append(contentsOf: found)
            if !found.isEmpty { return nil }
        }
        let commonValues = decodeEntries(commonEntries, common, path: path, line: node.line)
        guard valid, let name, let commonValues else { return nil }
        return .connector(
            ConnectorEntry(
                name: name, kind: kindEntry.key, role: role, options: options, common: commonValues,
                fingerprint: node.canonical, path: path, line: node.line))
    }

    /// The paths and lines of the scalars at or below `node` that hold a `${...}` reference.
    static func references(in node: ConfigNode, path: String) -> [(path: String, line: Int)] {
        switch node.content {
        case .null: return []
        case .scalar(let scalar):
            return scalar.interpolated || scalar.unresolved || scalar.raw != scalar.text ? [(path, node.line)] : []
        case .sequence(let items):
            return items.enumerated().flatMap { references(in: $0.element, path: "\(path)[\($0.offset)]") }
        case .mapping(let entries):
            return entries.flatMap { references(in: $0.value, path: "\(path).\($0.key)") }
        }
    }

    /// The name of a type whose values must be literal (no `${...}`), or nil when a reference
    /// may stand for it: booleans, numbers and choices among numbers.
    static func literalKind(_ type: OptionType) -> String? {
        switch type {
        case .bool: "a boolean"
        case .number: "a number"
        case .choice(let options) where options.contains(where: { Int($0) != nil }): "a choice among numbers"
        default: nil
        }
    }

    /// The known word closest to `word` (case-insensitive edit distance, a swap of neighbours
    /// counting as one edit), when it is close enough to be a slip: at most one edit for words
    /// of up to four letters, two for longer ones.
    public static func suggestion(for word: String, among known: [String]) -> String? {
        let typed = Array(word.lowercased().unicodeScalars.prefix(64))
        guard !typed.isEmpty else { return nil }
        let allowed = typed.count <= 4 ? 1 : 2
        var best: (word: String, distance: Int)?
        for candidate in known where candidate != word {
            let distance = editDistance(typed, Array(candidate.lowercased().unicodeScalars))
            if distance <= allowed, distance < (best?.distance ?? Int.max) { best = (candidate, distance) }
        }
        return best?.word
    }

    /// Optimal string alignment distance: insertions, deletions, substitutions and swaps of
    /// neighbouring characters.
    static func editDistance(_ a: [Unicode.Scalar], _ b: [Unicode.Scalar]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous2 = [Int](repeating: 0, count: b.count + 1)
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    current[j] = min(current[j], previous2[j - 2] + 1)
                }
            }
            (previous2, previous, current) = (previous, current, previous2)
        }
        return previous[b.count]
    }

    static func join(_ path: String, _ key: String) -> String {
        path.isEmpty ? key : "\(path).\(key)"
    }

    static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }
    }
}

/// Extra checks a connector kind makes on its validated options (impossible combinations).
/// Issues are located with ``OptionValues/issue(_:_:)``.
public typealias ConnectorValidator = @Sendable (OptionValues) -> [ConfigIssue]

extension OptionValues {
    /// The entry name of a connector entry (stored beside its options).
    public var entryName: String { string("__name") ?? "" }

    func renamed(_ name: String) -> OptionValues {
        var copy = self
        copy.entries["__name"] = .string(name)
        return copy
    }
}
