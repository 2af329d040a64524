import Synchronization

/// How to build one kind of source.
public struct SourceKind: Sendable {
    public var kind: String
    public var summary: String
    public var options: ObjectSchema
    public var validate: ConnectorValidator?
    public var make: @Sendable (ConnectorSetup) throws -> any Source
    /// Whether the same position always names the same message (see ``Message/session``).
    public var positions: PositionNumbering
    /// Whether the source reports a lag a scaler can act on (`switchyard_source_lag_messages`
    /// or a queue depth): required by `spec.autoscaling`.
    public var reportsLag: Bool
    /// Whether the source can stop at the end of what its system held when it started
    /// (``ConnectorSetup/stopAtEnd``): `switchyard run --stop-at end` and cutovers need it.
    public var stopsAtEnd: Bool

    public init(
        kind: String, summary: String, options: ObjectSchema, validate: ConnectorValidator? = nil, positions: PositionNumbering = .durable,
        reportsLag: Bool = false, stopsAtEnd: Bool = false, make: @escaping @Sendable (ConnectorSetup) throws -> any Source
    ) {
        self.positions = positions
        self.stopsAtEnd = stopsAtEnd
        self.reportsLag = reportsLag
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
    /// The options (field names of this kind's options) whose template makes an identity (an
    /// object key, a row key) from partition and offsets without the session. Fed by a source
    /// whose positions restart, such a key names different messages alike and the target
    /// overwrites one with the other, so the document is refused.
    public var sessionlessPositionKeys: (@Sendable (OptionValues) -> [String])?
    /// How many batches one lane may have started (``Target/start(_:)``) and not yet
    /// confirmed, by default (the target entry's `inFlight` sets it); nil: the kind confirms
    /// each batch before the next, and `inFlight` above 1 is refused.
    public var batchesInFlight: Int?

    public init(
        kind: String, summary: String, options: ObjectSchema, validate: ConnectorValidator? = nil,
        sessionlessPositionKeys: (@Sendable (OptionValues) -> [String])? = nil, batchesInFlight: Int? = nil,
        make: @escaping @Sendable (ConnectorSetup) throws -> any Target
    ) {
        self.batchesInFlight = batchesInFlight
        self.sessionlessPositionKeys = sessionlessPositionKeys
        self.kind = kind
        self.summary = summary
        self.options = options
        self.validate = validate
        self.make = make
    }
}

/// How a source numbers its positions (``Message/partition``, ``Message/offset``).
public enum PositionNumbering: Sendable {
    /// Positions are the system's own and survive restarts (Kafka offsets): a message read
    /// again has the same position.
    case durable
    /// Positions are numbered by a session that starts again (AMQP delivery tags per
    /// connection, link sequences per sender): unique only with ``Message/session``.
    case perSession
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
