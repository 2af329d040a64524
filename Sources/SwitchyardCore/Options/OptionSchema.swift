/// The one model of every option a document may hold.
///
/// The validator, the JSON Schema (`switchyard schema`), the option list
/// (`switchyard connectors`) and the connectors' own reading of their options are all derived
/// from these values, so they cannot disagree.
public indirect enum OptionType: Sendable {
    case string
    /// A literal identifier (letters, digits, `-`, `_`, `.`) naming a source, target or route;
    /// `${...}` references are refused, so names can be quoted in messages safely.
    case name
    /// A string that is never shown (passwords, tokens).
    case secret
    /// A per-message `{{ ... }}` template, compiled when the document loads.
    case template
    case bool
    case int(min: Int? = nil, max: Int? = nil)
    case number
    /// `250ms`, `30s`, `5m`, `24h`, `1h30m`.
    case duration
    /// Bytes: an integer, or `512KiB`, `64MiB`, `1GB`.
    case size
    case choice([String])
    case list(OptionType)
    /// A mapping from free-form names to values.
    case map(OptionType)
    case object(ObjectSchema)
    /// A source or target entry: `name` plus exactly one connector kind.
    case connector(ConnectorRole)
    /// Any YAML (Kubernetes structures such as `resources`, `affinity`), checked by Kubernetes.
    case any

    /// A short human name for messages and listings.
    public var displayName: String {
        switch self {
        case .string: "string"
        case .name: "name"
        case .secret: "secret string"
        case .template: "template"
        case .bool: "boolean"
        case .int: "integer"
        case .number: "number"
        case .duration: "duration"
        case .size: "size"
        case .choice(let options): options.joined(separator: " | ")
        case .list(let element): "list of \(element.displayName)"
        case .map(let element): "map of \(element.displayName)"
        case .object: "object"
        case .connector(let role): role.rawValue
        case .any: "any"
        }
    }
}

/// Whether a connector reads from a system or writes to one.
public enum ConnectorRole: String, Sendable {
    case source
    case target
}

/// One named option of an object.
public struct OptionField: Sendable {
    public var name: String
    public var type: OptionType
    public var required: Bool
    /// The default, written as a user would write it; parsed by the same code as user input.
    public var defaultValue: String?
    public var doc: String
    /// Whether the value is written literally, without `${...}` references: fields that the
    /// operator reads from the custom resource itself (`state`, `deployment.replicas`), where no
    /// pod environment resolves them.
    public var literal: Bool

    public init(
        _ name: String, _ type: OptionType, required: Bool = false, default defaultValue: String? = nil, literal: Bool = false, doc: String
    ) {
        self.name = name
        self.type = type
        self.required = required
        self.defaultValue = defaultValue
        self.literal = literal
        self.doc = doc
    }
}

/// The fields an object may hold. Any other field is an error.
public struct ObjectSchema: Sendable {
    public var fields: [OptionField]
    public var doc: String
    /// Groups of fields of which at most one may be set.
    public var exclusive: [[String]]

    public init(doc: String = "", exclusive: [[String]] = [], _ fields: [OptionField]) {
        self.fields = fields
        self.doc = doc
        self.exclusive = exclusive
    }

    public func field(_ name: String) -> OptionField? {
        fields.first { $0.name == name }
    }
}
