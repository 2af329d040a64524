import Logging
import SwitchyardCore

/// Compares the rows a `postgres` target holds with the rows its source's records make, by the
/// target's conflict key (`switchyard reconcile`, docs/migration.md).
///
/// Every source record is rendered with the target's own column templates (the code that
/// writes them) and copied into a temporary table on the server, with its channel, partition
/// and offset; the server casts each value to its column's type as the target's statements do,
/// keeps per key and source partition the last record (an upsert's last write wins), and
/// compares with the target table in SQL. Memory here: one chunk of records; the server holds
/// the temporary tables (on disk when large).
///
/// Blocking and not thread-safe: used on one thread, never the cooperative pool.
public final class PostgresRowReconciler {
    public typealias Report = KeyedReconciliationReport
    public typealias Position = KeyedReconciliationReport.Position

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    let target: PostgresTarget
    let connection: PostgresConnection
    var pending: [Message] = []
    var report: Report
    /// Per column of the target, its type in the table.
    var columnTypes: [String] = []
    var started = ContinuousClock.now
    let conflict: [String]
    static let chunk = 2_000
    static let staging = "switchyard_reconcile_staging"
    static let typed = "switchyard_reconcile_typed"
    static let last = "switchyard_reconcile_last"

    /// - Parameter entry: a `postgres` target of the document; its rows need an identity, so
    ///   `mode: upsert` with `conflictColumns`.
    public init(target entry: ConnectorEntry) throws {
        guard entry.options.string("mode") == "upsert", let conflict = entry.options.strings("conflictColumns"), !conflict.isEmpty else {
            throw Failure(
                description:
                    "\(entry.path).postgres.mode: rows are compared by their conflict key; a target with mode: insert has none (reconcile needs mode: upsert and conflictColumns)"
            )
        }
        self.conflict = conflict
        var logger = Logger(label: "switchyard.reconcile.postgres")
        logger.logLevel = .error
        target = try PostgresTarget(ConnectorSetup(name: entry.name, options: entry.options, logger: logger, memoryLimit: 0))
        connection = PostgresConnection(conninfo: entry.options.string("url") ?? "", label: "switchyard.reconcile.postgres")
        report = Report(target: "table \(target.table)", unit: "rows", identity: "conflict key")
    }

    func sql(_ text: String) throws {
        if case .failure(let failure) = connection.execute(text) {
            throw Failure(description: "postgres: \(failure.text) in: \(text.prefix(300))")
        }
    }

    func rows(_ text: String) throws -> [[String?]] {
        switch connection.query(text, parameters: []) {
        case .success(let rows): return rows
        case .failure(let failure): throw Failure(description: "postgres: \(failure.text) in: \(text.prefix(300))")
        }
    }

    var names: [String] { target.columns.map(\.name) }

    /// Connects, reads the table's column types and creates the temporary tables.
    public func start() throws {
        started = ContinuousClock.now
        do { try connection.connectIfNeeded() } catch let error as ConnectorError {
            throw Failure(description: "target '\(target.name)': \(error.message)")
        }
        let escaped = target.table.replacing("'", with: "''")
        let catalog = try rows(
            """
            SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
            WHERE a.attrelid = '\(escaped)'::regclass AND a.attnum > 0 AND NOT a.attisdropped
            """)
        var types: [String: String] = [:]
        for row in catalog { if let name = row[0], let type = row[1] { types[name] = type } }
        columnTypes = try names.map { name in
            guard let type = types[name] else { throw Failure(description: "table \(target.table) has no column \(name)") }
            return type
        }
        let textColumns = names.indices.map { "c\($0) text" }.joined(separator: ", ")
        try sql(
            """
            DROP TABLE IF EXISTS \(Self.staging), \(Self.typed), \(Self.last);
            CREATE TEMP TABLE \(Self.staging) (\(textColumns), sy_channel text, sy_partition int, sy_offset bigint);
            CREATE TEMP TABLE \(Self.typed) AS SELECT \(target.quotedColumnList) FROM \(target.table) WITH NO DATA;
            ALTER TABLE \(Self.typed) ADD COLUMN sy_channel text, ADD COLUMN sy_partition int, ADD COLUMN sy_offset bigint;
            """)
    }

    /// Takes one source record.
    public func add(_ message: Message) throws {
        pending.append(message)
        report.records += 1
        if pending.count >= Self.chunk { try flush() }
    }

    /// Renders the pending records and copies them into the staging table.
    func flush() throws {
        guard !pending.isEmpty else { return }
        let (rows, _, failures) = target.render(pending)
        let failed = Set(failures.map(\.index))
        for index in failed.sorted() { noteUnwritable(pending[index]) }
        var data: [UInt8] = []
        rows.blob.withUnsafeBufferPointer { blob in
            // `render` makes a row for every record, failed or not: row i is record i.
            for (row, message) in pending.enumerated() where !failed.contains(row) {
                for column in 0..<rows.columns {
                    let offset = rows.offset(row: row, column: column)
                    if offset < 0 {
                        data.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "N")])
                    } else {
                        PostgresTarget.appendEscaped(blob, from: offset, escapes: PostgresTarget.copyEscapes, into: &data)
                    }
                    data.append(UInt8(ascii: "\t"))
                }
                var channel = Array(message.channel.utf8)
                channel.append(0)
                channel.withUnsafeBufferPointer {
                    PostgresTarget.appendEscaped($0, from: 0, escapes: PostgresTarget.copyEscapes, into: &data)
                }
                data.append(contentsOf: "\t\(message.partition)\t\(message.offset)\n".utf8)
            }
        }
        pending.removeAll(keepingCapacity: true)
        let result = data.withUnsafeBytes { connection.copyIn("COPY \(Self.staging) FROM STDIN", $0) }
        if case .failure(let failure) = result {
            throw Failure(description: "postgres: \(failure.text) while copying the rendered rows")
        }
    }

    func noteUnwritable(_ message: Message) {
        report.unwritableCount += 1
        if report.unwritable.count < 20 {
            report.unwritable.append(Position(channel: message.channel, partition: message.partition, offset: message.offset))
        }
    }

    /// A staging column as the target stores it: its template's text through the forced type,
    /// then the column's type.
    func typedValue(_ index: Int, from alias: String) -> String {
        let forced = target.explicitTypes[index].map { "::\($0)" } ?? ""
        return "\(alias).c\(index)\(forced)::\(columnTypes[index])"
    }

    static func quote(_ name: String) -> String { PostgresIdentifier.quote(name) }

    /// Compares and returns the report; drops the temporary tables.
    public func finish(show: Int) throws -> Report {
        try flush()
        let columns = target.quotedColumnList + ", sy_channel, sy_partition, sy_offset"
        let values = names.indices.map { typedValue($0, from: "s") }.joined(separator: ", ") + ", s.sy_channel, s.sy_partition, s.sy_offset"
        // All at once; when a value does not cast (the target dead-letters that record), row by
        // row, noting the ones that fail.
        if case .failure = connection.execute("INSERT INTO \(Self.typed) (\(columns)) SELECT \(values) FROM \(Self.staging) s") {
            try sql(
                """
                CREATE TEMP TABLE IF NOT EXISTS switchyard_reconcile_unwritable (sy_channel text, sy_partition int, sy_offset bigint);
                DO $$ DECLARE s record; BEGIN
                  FOR s IN SELECT * FROM \(Self.staging) LOOP
                    BEGIN
                      INSERT INTO \(Self.typed) (\(columns)) VALUES (\(values));
                    EXCEPTION WHEN others THEN
                      INSERT INTO switchyard_reconcile_unwritable VALUES (s.sy_channel, s.sy_partition, s.sy_offset);
                    END;
                  END LOOP;
                END $$;
                """)
            for row in try rows("SELECT sy_channel, sy_partition, sy_offset FROM switchyard_reconcile_unwritable ORDER BY 1, 2, 3") {
                noteUnwritable(
                    Message(value: [], channel: row[0] ?? "", partition: Int32(row[1] ?? "") ?? -1, offset: Int64(row[2] ?? "") ?? -1))
            }
            try sql("DROP TABLE switchyard_reconcile_unwritable")
        }
        let keys = conflict.map(Self.quote)
        let keyList = keys.joined(separator: ", ")
        func keysEqual(_ a: String, _ b: String) -> String { keys.map { "\(a).\($0) = \(b).\($0)" }.joined(separator: " AND ") }
        let others = names.filter { !conflict.contains($0) }.map(Self.quote)
        func rowsMatch(_ a: String, _ b: String) -> String {
            others.isEmpty ? "TRUE" : others.map { "\(a).\($0)::text IS NOT DISTINCT FROM \(b).\($0)::text" }.joined(separator: " AND ")
        }
        try sql(
            """
            CREATE TEMP TABLE \(Self.last) AS SELECT DISTINCT ON (\(keyList), sy_channel, sy_partition) * FROM \(Self.typed)
              ORDER BY \(keyList), sy_channel, sy_partition, sy_offset DESC;
            CREATE INDEX ON \(Self.last) (\(keyList));
            ANALYZE \(Self.last);
            """)
        func count(_ query: String) throws -> Int { Int(try rows("SELECT count(*) FROM (\(query)) q").first?[0] ?? "") ?? 0 }
        func positions(_ query: String) throws -> [Position] {
            try rows("SELECT sy_channel, sy_partition, sy_offset FROM (\(query)) q ORDER BY 1, 2, 3 LIMIT \(show)").map {
                Position(channel: $0[0] ?? "", partition: Int32($0[1] ?? "") ?? -1, offset: Int64($0[2] ?? "") ?? -1)
            }
        }
        report.expected = try count("SELECT DISTINCT \(keyList) FROM \(Self.last)")
        report.held = try count("SELECT 1 FROM \(target.table)")
        let missing =
            "SELECT l.sy_channel, l.sy_partition, l.sy_offset FROM \(Self.last) l WHERE NOT EXISTS (SELECT 1 FROM \(target.table) t WHERE \(keysEqual("t", "l")))"
        report.missingCount = try count(missing)
        report.missing = try positions(missing)
        let differing = """
            SELECT l.sy_channel, l.sy_partition, l.sy_offset FROM \(Self.last) l JOIN \(target.table) t ON \(keysEqual("t", "l"))
            WHERE NOT EXISTS (SELECT 1 FROM \(Self.last) m WHERE \(keysEqual("m", "l")) AND \(rowsMatch("t", "m")))
            """
        report.differingCount = try count(differing)
        report.differing = try positions(differing)
        let extra =
            "SELECT \(keys.map { "t.\($0)" }.joined(separator: ", ")) FROM \(target.table) t WHERE NOT EXISTS (SELECT 1 FROM \(Self.last) l WHERE \(keysEqual("t", "l")))"
        report.extraCount = try count(extra)
        let named = zip(conflict, keys).map { name, quoted in "'\(name.replacing("'", with: "''"))=' || coalesce(t.\(quoted)::text, 'NULL')"
        }
        report.extra = try rows("SELECT \(named.joined(separator: " || ', ' || ")) FROM (\(extra)) t ORDER BY 1 LIMIT \(show)").map {
            $0[0] ?? ""
        }
        try sql("DROP TABLE IF EXISTS \(Self.staging), \(Self.typed), \(Self.last)")
        connection.disconnect()
        let elapsed = ContinuousClock.now - started
        report.seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return report
    }
}
