/// What `switchyard reconcile` found for a target that holds one item per identity (a row by
/// conflict key, a Redis key): the source records rendered as the target would write them,
/// compared by identity with what the target holds (docs/migration.md).
public struct KeyedReconciliationReport: Sendable {
    /// A source record's position.
    public struct Position: Sendable, Equatable {
        public var channel: String
        public var partition: Int32
        public var offset: Int64

        public init(channel: String, partition: Int32, offset: Int64) {
            self.channel = channel
            self.partition = partition
            self.offset = offset
        }
    }

    /// What the target is (`table "payments"`, `redis 127.0.0.1:6379/7 keys order:*`).
    public var target: String
    /// What one item is called (`rows`, `keys`) and what identifies it (`conflict key`, `key`).
    public var unit: String
    public var identity: String
    /// Source records read.
    public var records = 0
    /// Records the target cannot write (it dead-letters them): expected absent, not compared.
    public var unwritableCount = 0
    public var unwritable: [Position] = []
    /// Distinct identities the records make, and the items the target holds where it was
    /// counted (nil: not counted).
    public var expected = 0
    public var held: Int?
    /// Identities with no item: the last record of each (per source partition).
    public var missingCount = 0
    public var missing: [Position] = []
    /// Items that equal none of their identity's last records (one per source partition).
    public var differingCount = 0
    public var differing: [Position] = []
    /// Items whose identity no record makes, by identity; nil when the target cannot list
    /// them (a Redis key template without a literal prefix).
    public var extraCount: Int? = 0
    public var extra: [String] = []
    public var seconds = 0.0

    public init(target: String, unit: String, identity: String) {
        self.target = target
        self.unit = unit
        self.identity = identity
    }

    public var isEqual: Bool { missingCount == 0 && differingCount == 0 && (extraCount ?? 0) == 0 }

    /// Keeps the first `limit` positions, in order.
    public static func noting(_ position: Position, in list: inout [Position], limit: Int) {
        if list.count < limit { list.append(position) }
    }
}
