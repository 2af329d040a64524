/// A validated option value, with defaults applied.
public indirect enum OptionValue: Sendable {
    case string(String)
    case bool(Bool)
    case int(Int)
    case number(Double)
    case duration(Duration)
    case size(Int)
    case template(Template)
    case list([OptionValue])
    case map([(key: String, value: OptionValue)])
    case object(OptionValues)
    case connector(ConnectorEntry)
    case node(ConfigNode)

    public var stringValue: String? {
        switch self {
        case .string(let text): text
        case .template(let template): template.source
        default: nil
        }
    }
}

/// The validated fields of one object, as a connector reads them.
///
/// Every declared field with a default is present; optional fields without a default are
/// absent when the document does not set them.
public struct OptionValues: Sendable {
    /// The object's path in the document, e.g. `spec.targets[1].file`.
    public var path: String
    /// 1-based line of the object.
    public var line: Int
    var entries: [String: OptionValue]
    var lines: [String: Int]
    /// Fields the document set explicitly (not filled from defaults).
    public var explicit: Set<String>

    public init(path: String, line: Int = 0, entries: [String: OptionValue] = [:], lines: [String: Int] = [:], explicit: Set<String> = []) {
        self.path = path
        self.line = line
        self.entries = entries
        self.lines = lines
        self.explicit = explicit
    }

    public subscript(name: String) -> OptionValue? {
        get { entries[name] }
        set { entries[name] = newValue }
    }

    public var names: [String] { entries.keys.sorted() }

    public func has(_ name: String) -> Bool { entries[name] != nil }

    public func string(_ name: String) -> String? { entries[name]?.stringValue }

    public func bool(_ name: String) -> Bool? {
        if case .bool(let value) = entries[name] { return value }
        return nil
    }

    public func int(_ name: String) -> Int? {
        switch entries[name] {
        case .int(let value), .size(let value): value
        default: nil
        }
    }

    public func number(_ name: String) -> Double? {
        switch entries[name] {
        case .number(let value): value
        case .int(let value): Double(value)
        default: nil
        }
    }

    public func duration(_ name: String) -> Duration? {
        if case .duration(let value) = entries[name] { return value }
        return nil
    }

    public func size(_ name: String) -> Int? { int(name) }

    public func template(_ name: String) -> Template? {
        if case .template(let value) = entries[name] { return value }
        return nil
    }

    public func object(_ name: String) -> OptionValues? {
        if case .object(let value) = entries[name] { return value }
        return nil
    }

    public func list(_ name: String) -> [OptionValue]? {
        if case .list(let value) = entries[name] { return value }
        return nil
    }

    public func strings(_ name: String) -> [String]? {
        list(name)?.compactMap(\.stringValue)
    }

    public func map(_ name: String) -> [(key: String, value: OptionValue)]? {
        if case .map(let value) = entries[name] { return value }
        return nil
    }

    /// The document path of field `name` (for error messages).
    public func path(of name: String) -> String { "\(path).\(name)" }

    /// The line of field `name`, or of this object when the field was not written.
    public func line(of name: String) -> Int { lines[name] ?? line }

    /// An issue about field `name`, located at its path and line.
    public func issue(_ name: String, _ message: String) -> ConfigIssue {
        ConfigIssue(path: path(of: name), line: line(of: name), message: message)
    }
}

/// A validated source or target entry.
public struct ConnectorEntry: Sendable {
    public var name: String
    public var kind: String
    public var role: ConnectorRole
    /// The options of the connector kind (`spec.targets[0].file`).
    public var options: OptionValues
    /// The fields every entry of this role may hold besides the kind (`batching`, `parallelism`).
    public var common: OptionValues
    /// A canonical rendering of the entry; equal fingerprints mean an unchanged connector.
    public var fingerprint: String
    public var path: String
    public var line: Int
}
