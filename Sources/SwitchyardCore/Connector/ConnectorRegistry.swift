import Synchronization

/// How to build one kind of source.
public struct SourceKind: Sendable {
    public var kind: String
    public var summary: String
    public var options: ObjectSchema
    public var validate: ConnectorValidator?
    public var make: @Sendable (ConnectorSetup) throws -> any Source

    public init(kind: String, summary: String, options: ObjectSchema, validate: ConnectorValidator? = nil, make: @escaping @Sendable (ConnectorSetup) throws -> any Source) {
        self.kind = kind
        self.summary = summary
        self.options = options
        self.validate = validate
        self.make = make
    }
}

/// How to build one kind of target.
public struct TargetKind: Sendable {
    public var kind: String
    public var summary: String
    public var options: ObjectSchema
    public var validate: ConnectorValidator?
    public var make: @Sendable (ConnectorSetup) throws -> any Target

    public init(kind: String, summary: String, options: ObjectSchema, validate: ConnectorValidator? = nil, make: @escaping @Sendable (ConnectorSetup) throws -> any Target) {
        self.kind = kind
        self.summary = summary
        self.options = options
        self.validate = validate
        self.make = make
    }
}

/// A connector family: one module under `connectors/`, selected by a package trait.
public struct ConnectorFamily: Sendable {
    public var name: String
    public var summary: String
    public var sources: [SourceKind]
    public var targets: [TargetKind]
    /// Notes shown by `switchyard connectors` (limitations, versions).
    public var notes: [String]

    public init(name: String, summary: String, sources: [SourceKind], targets: [TargetKind], notes: [String] = []) {
        self.name = name
        self.summary = summary
        self.sources = sources
        self.targets = targets
        self.notes = notes
    }
}

/// The connector kinds compiled into this binary. The executable registers the families; the
/// core never names a connector.
public final class ConnectorRegistry: Sendable {
    let state = Mutex<[ConnectorFamily]>([])

    public init(_ families: [ConnectorFamily] = []) {
        for family in families { register(family) }
    }

    public func register(_ family: ConnectorFamily) {
        state.withLock { families in
            families.removeAll { $0.name == family.name }
            families.append(family)
        }
    }

    public var families: [ConnectorFamily] { state.withLock { $0 } }

    public func source(_ kind: String) -> SourceKind? {
        families.lazy.flatMap(\.sources).first { $0.kind == kind }
    }

    public func target(_ kind: String) -> TargetKind? {
        families.lazy.flatMap(\.targets).first { $0.kind == kind }
    }

    /// The option schemas by role, as the ``OptionDecoder`` needs them.
    public var decoderKinds: [ConnectorRole: [(kind: String, schema: ObjectSchema, validate: ConnectorValidator?)]] {
        let all = families
        return [
            .source: all.flatMap(\.sources).map { ($0.kind, $0.options, $0.validate) },
            .target: all.flatMap(\.targets).map { ($0.kind, $0.options, $0.validate) },
        ]
    }
}
