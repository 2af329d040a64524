import Logging
import Synchronization
import SwitchyardCore

/// The `postgres` target: one row per message, each batch in one transaction.
///
/// A batch is first offered to `COPY ... FROM STDIN` (text format), which the server loads far
/// faster than any INSERT. COPY cannot resolve conflicts, so in upsert mode it succeeds only when
/// none of the batch's keys exist yet; when it fails on the data (a key that exists, a bad row),
/// nothing was written, and the batch takes the statement path below. After such a failure the
/// next batches skip COPY for a while (doubling while COPY keeps failing), so a stream of updates
/// pays for one failed COPY every thousand batches or so.
///
/// Rows go out as one `INSERT ... SELECT * FROM unnest($1::type[], $2::type[]) [ON CONFLICT
/// ... DO UPDATE]` statement per batch, one text array parameter per column (never spliced into
/// the SQL), with the column types read from the catalog when the target opens. A table with
/// an array-typed column (which unnest would flatten), or whose types could not be read, gets
/// multi-row `INSERT ... VALUES ($1, $2), ...` statements of at most 65535 parameters instead.
/// When a statement fails on a row's data (SQLSTATE classes 22, 23, 54 or 21000) the
/// transaction is rolled back and replayed with savepoints, bisecting the failing statements
/// until the offending rows are isolated: those fail permanently with the server's text and
/// the rest is committed.
final class PostgresTarget: Target {
    static let kind = TargetKind(
        kind: "postgres",
        summary:
            "writes one row per message with parameterised multi-row INSERT (or upsert) in one transaction per batch; bad rows are isolated and dead-lettered",
        options: ObjectSchema(
            doc: "Writes rows to PostgreSQL through libpq.",
            [
                OptionField(
                    "url", .secret, required: true,
                    doc:
                        "a libpq connection string or URL (postgres://user:password@host:port/db?sslmode=...); several hosts with target_session_attrs=read-write fail over to the new primary; never shown"
                ),
                OptionField(
                    "table", .string, required: true,
                    doc:
                        "table, optionally schema-qualified (schema.table); names are used exactly as written (case-sensitive), double quotes allowed"
                ),
                OptionField(
                    "mode", .choice(["insert", "upsert"]), default: "insert",
                    doc:
                        "insert: plain INSERT (a redelivered row is inserted again or violates a key); upsert: INSERT ... ON CONFLICT (conflictColumns) DO UPDATE, idempotent under redelivery"
                ),
                OptionField(
                    "conflictColumns", .list(.string),
                    doc: "upsert only: the columns of a unique index; the other columns are updated on conflict"),
                OptionField(
                    "columns", .map(.template), required: true,
                    doc: "column name to template, e.g. id: '{{ json.id }}', doc: '{{ value }}'; values are sent as parameters"),
                OptionField(
                    "types", .map(.string),
                    doc:
                        "column name to a type the parameter is cast to (jsonb, bigint, timestamptz), where the server cannot infer it or createTable needs it"
                ),
                OptionField(
                    "nullWhenEmpty", .bool, default: "false",
                    doc: "store NULL when a template renders empty text (a missing JSON path or header)"),
                OptionField(
                    "createTable", .bool, default: "false",
                    doc: "CREATE TABLE IF NOT EXISTS on connect, with the types given (text otherwise) and conflictColumns as primary key"),
                OptionField(
                    "poolSize", .int(min: 1, max: 64), default: "1",
                    doc: "connections; each write uses one, so set it to the entry's parallelism"),
                OptionField(
                    "copy", .bool, default: "true",
                    doc:
                        "offer each batch to COPY first, falling back to the INSERT statements when it fails on the data (a key that exists, a bad row); false: statements only (tables with rules, which COPY does not apply)"
                ),
            ]),
        validate: validate,
        sessionlessPositionKeys: { options in
            // The row's identity is its conflict columns (upsert); a plain insert has none.
            guard options.string("mode") == "upsert", let conflict = options.strings("conflictColumns") else { return [] }
            return (options.map("columns") ?? []).compactMap { column in
                guard conflict.contains(column.key), case .template(let template) = column.value, template.readsOffsetWithoutSession else {
                    return nil
                }
                return "columns.\(column.key)"
            }
        },
        make: { setup in try PostgresTarget(setup) }
    )

    static func validate(_ options: OptionValues) -> [ConfigIssue] {
        var issues: [ConfigIssue] = []
        if let table = options.string("table"), PostgresIdentifier.parseQualified(table) == nil {
            issues.append(options.issue("table", "expected a table name or schema.table (double quotes allowed), found '\(table)'"))
        }
        let columns = options.map("columns") ?? []
        let names = Set(columns.map(\.key))
        if options.has("columns") && columns.isEmpty {
            issues.append(options.issue("columns", "name at least one column and its template"))
        }
        for column in columns {
            if column.key.isEmpty || column.key.contains("\0") {
                issues.append(options.issue("columns", "a column name must not be empty"))
            }
            if case .template(let template) = column.value, template.source.isEmpty {
                issues.append(
                    ConfigIssue(
                        path: options.path(of: "columns") + ".\(column.key)", line: options.line(of: "columns"),
                        message: "the template is empty; write e.g. '{{ value }}' or '{{ json.\(column.key) }}'"))
            }
        }
        let conflict = options.strings("conflictColumns") ?? []
        if options.string("mode") == "upsert" && conflict.isEmpty {
            issues.append(options.issue("conflictColumns", "mode upsert needs the columns of a unique index to detect conflicts on"))
        }
        if options.string("mode") != "upsert" && options.explicit.contains("conflictColumns") {
            issues.append(options.issue("conflictColumns", "conflictColumns applies to mode upsert only"))
        }
        for name in conflict where !names.contains(name) {
            issues.append(
                options.issue("conflictColumns", "'\(name)' is not one of the columns (\(columns.map(\.key).joined(separator: ", ")))"))
        }
        for entry in options.map("types") ?? [] {
            let path = options.path(of: "types") + ".\(entry.key)"
            if !names.contains(entry.key) {
                issues.append(ConfigIssue(path: path, line: options.line(of: "types"), message: "'\(entry.key)' is not one of the columns"))
            }
            if let type = entry.value.stringValue, !PostgresIdentifier.isTypeName(type) {
                issues.append(
                    ConfigIssue(
                        path: path, line: options.line(of: "types"),
                        message: "'\(type)' is not a type name (letters, digits, _, spaces, one (...) and [])"))
            }
        }
        return issues
    }

    let name: String
    let table: String
    let columns: [(name: String, template: Template)]
    let upsert: Bool
    let conflictIndices: [Int]
    let nullWhenEmpty: Bool
    let createSQL: String?
    let probeSQL: String
    let insertPrefix: String
    let placeholderCasts: [String]
    let conflictClause: String
    let rowsPerStatement: Int
    let quotedColumnList: String
    let explicitTypes: [String?]
    /// Per column, the element type of the unnest parameter; nil until the catalog was read, or
    /// when the VALUES statements are used.
    let arrayTypes = Mutex<[String]?>(nil)
    let copyStatement: String
    /// Whether COPY may be tried: asked for, and every forced type is the column's own type (a
    /// forced cast, e.g. jsonb into a text column, changes what the statements store).
    let copyReady = Mutex(false)
    let copyWanted: Bool
    let copyGate = Mutex(CopyGate())
    /// Batches written by COPY and by statements (for the tests and the debug log).
    let pathCounts = Mutex((copy: 0, statements: 0))
    let pool: ConnectionPool<PostgresConnection>
    let logger: Logger
    let state = HealthState()

    init(_ setup: ConnectorSetup) throws {
        let options = setup.options
        name = setup.name
        let parts = PostgresIdentifier.parseQualified(options.string("table") ?? "") ?? [options.string("table") ?? ""]
        table = PostgresIdentifier.quoteQualified(parts)
        columns = (options.map("columns") ?? []).compactMap { entry in
            if case .template(let template) = entry.value { return (entry.key, template) }
            return nil
        }
        upsert = options.string("mode") == "upsert"
        let conflict = options.strings("conflictColumns") ?? []
        let names = columns.map(\.name)
        conflictIndices = conflict.compactMap { names.firstIndex(of: $0) }
        nullWhenEmpty = options.bool("nullWhenEmpty") ?? false
        let types = Dictionary(
            (options.map("types") ?? []).compactMap { entry in entry.value.stringValue.map { (entry.key, $0) } }, uniquingKeysWith: { $1 })
        let quotedColumns = names.map(PostgresIdentifier.quote)
        placeholderCasts = names.map { types[$0].map { "::\($0)" } ?? "" }
        explicitTypes = names.map { types[$0] }
        quotedColumnList = quotedColumns.joined(separator: ", ")
        insertPrefix = "INSERT INTO \(table) (\(quotedColumns.joined(separator: ", "))) VALUES "
        if upsert {
            let target = conflict.map(PostgresIdentifier.quote).joined(separator: ", ")
            let updates = names.filter { !conflict.contains($0) }.map {
                "\(PostgresIdentifier.quote($0)) = EXCLUDED.\(PostgresIdentifier.quote($0))"
            }
            conflictClause =
                " ON CONFLICT (\(target)) " + (updates.isEmpty ? "DO NOTHING" : "DO UPDATE SET " + updates.joined(separator: ", "))
        } else {
            conflictClause = ""
        }
        copyStatement = "COPY \(table) (\(quotedColumns.joined(separator: ", "))) FROM STDIN"
        copyWanted = options.bool("copy") ?? true
        probeSQL = "SELECT \(quotedColumns.joined(separator: ", ")) FROM \(table) LIMIT 0"
        if options.bool("createTable") == true {
            var definitions = zip(names, quotedColumns).map { name, quoted in "\(quoted) \(types[name] ?? "text")" }
            if upsert { definitions.append("PRIMARY KEY (\(conflict.map(PostgresIdentifier.quote).joined(separator: ", ")))") }
            createSQL = "CREATE TABLE IF NOT EXISTS \(table) (\(definitions.joined(separator: ", ")))"
        } else {
            createSQL = nil
        }
        rowsPerStatement = max(1, 65535 / max(1, names.count))
        let size = options.int("poolSize") ?? 1
        let conninfo = options.string("url") ?? ""
        let label = "switchyard.postgres.\(setup.name)"
        pool = ConnectionPool((0..<size).map { slot in PostgresConnection(conninfo: conninfo, label: "\(label).\(slot)") })
        logger = setup.logger
    }

    var health: ConnectorHealth { state.current }

    func setHealth(_ health: ConnectorHealth) {
        if state.set(health) && health == .up {
            logger.info("connected to postgres", metadata: ["target": "\(name)", "table": "\(table)"])
        }
    }

    /// Connects every pool slot, creates the table when asked, and checks that the table and
    /// its columns exist (a missing one pauses the route with a clear message).
    func open() async throws {
        do {
            for (slot, connection) in pool.connections.enumerated() {
                try await connection.io.run { () throws -> Void in
                    try connection.connectIfNeeded()
                    if slot == 0, let createSQL = self.createSQL, case .failure(let failure) = connection.execute(createSQL) {
                        throw failure.error(table: self.table)
                    }
                    if slot == 0, case .failure(let failure) = connection.execute(self.probeSQL) {
                        throw failure.error(table: self.table)
                    }
                    if slot == 0 { self.readColumnTypes(on: connection) }
                }
            }
            setHealth(.up)
        } catch let error as ConnectorError {
            state.failed(error)
            throw error
        }
    }

    func write(_ messages: [Message]) async throws -> WriteResult {
        if messages.isEmpty { return .allWritten }
        do {
            let result = try await pool.withConnection { connection in
                try await connection.io.run { () throws -> WriteResult in
                    try connection.connectIfNeeded()
                    do {
                        return try self.writeBatch(messages, on: connection)
                    } catch {
                        connection.endTransaction()
                        throw error
                    }
                }
            }
            setHealth(.up)
            return result
        } catch let error as ConnectorError {
            state.failed(error)
            throw error
        }
    }

    func close() async {
        for connection in pool.connections {
            await connection.io.run { connection.disconnect() }
        }
    }

    // MARK: writing (on the connection's queue)

    /// The rendered parameters of a batch: NUL-terminated values in one buffer.
    struct Rows {
        var blob: [UInt8] = []
        /// Per row and column (row-major, `columns` per row), the offset of the value in
        /// `blob`, or -1 for NULL.
        var offsets: [Int] = []
        var columns = 0

        func offset(row: Int, column: Int) -> Int { offsets[row * columns + column] }
        func row(_ row: Int) -> ArraySlice<Int> { offsets[(row * columns)..<((row + 1) * columns)] }
    }

    /// A conflict key's bytes, hashed as one buffer rather than byte by byte.
    struct ConflictKey: Hashable {
        var bytes: [UInt8]
        static func == (a: ConflictKey, b: ConflictKey) -> Bool { a.bytes == b.bytes }
        func hash(into hasher: inout Hasher) {
            bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
        }
    }

    func render(_ messages: [Message]) -> (rows: Rows, order: [Int], failures: [(index: Int, error: ConnectorError)]) {
        var rows = Rows()
        rows.columns = columns.count
        rows.blob.reserveCapacity(messages.count * columns.count * 24)
        rows.offsets.reserveCapacity(messages.count * columns.count)
        var failures: [(index: Int, error: ConnectorError)] = []
        var order: [Int] = []
        var lastByKey: [ConflictKey: Int] = [:]
        if upsert { lastByKey.reserveCapacity(messages.count) }
        for (index, message) in messages.enumerated() {
            let first = rows.offsets.count
            var bad: String?
            for column in columns {
                let start = rows.blob.count
                column.template.render(message, into: &rows.blob)
                if rows.blob[start...].contains(0) {
                    bad = bad ?? "the value for column \(column.name) contains a NUL byte, which PostgreSQL text cannot hold"
                }
                if nullWhenEmpty && rows.blob.count == start {
                    rows.offsets.append(-1)
                } else {
                    rows.blob.append(0)
                    rows.offsets.append(start)
                }
            }
            if let bad {
                failures.append((index, .permanent(bad)))
                continue
            }
            if upsert {
                // Two rows with the same key in one statement make ON CONFLICT fail (21000):
                // the later one wins, as it would written one after the other.
                var key: [UInt8] = []
                for column in conflictIndices {
                    let offset = rows.offsets[first + column]
                    if offset >= 0 {
                        key.append(1)
                        key.append(contentsOf: rows.blob[offset..<rows.blob[offset...].firstIndex(of: 0)!])
                    }
                    key.append(0)
                }
                let conflictKey = ConflictKey(bytes: key)
                if let earlier = lastByKey[conflictKey] { order[earlier] = -1 }
                lastByKey[conflictKey] = order.count
            }
            order.append(index)
        }
        return (rows, order.filter { $0 >= 0 }, failures)
    }

    /// Reads the table's column types for the unnest statement; leaves the VALUES statements
    /// in place when a column is an array or a type cannot be read.
    func readColumnTypes(on connection: PostgresConnection) {
        let sql = """
            SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typcategory = 'A', a.atttypid::text
            FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
            WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
            """
        let rows: [[String?]]
        switch connection.query(sql, parameters: [table]) {
        case .success(let result): rows = result
        case .failure(let failure):
            logger.info(
                "postgres column types unknown; writing with multi-row VALUES",
                metadata: ["target": "\(name)", "error": "\(failure.message)"])
            return
        }
        var catalog: [String: (type: String, isArray: Bool, oid: String?)] = [:]
        for row in rows where row.count == 4 {
            if let name = row[0], let type = row[1] { catalog[name] = (type, row[2] == "t", row[3]) }
        }
        if copyWanted {
            var same = true
            for (index, column) in columns.enumerated() {
                guard let forced = explicitTypes[index] else { continue }
                guard case .success(let resolved) = connection.query("SELECT to_regtype($1)::oid::text", parameters: [forced]),
                    let oid = resolved.first?.first ?? nil, oid == catalog[column.name]?.oid
                else {
                    same = false
                    logger.info(
                        "postgres column \(column.name) is cast to \(forced), not its own type; writing without COPY",
                        metadata: ["target": "\(name)"])
                    break
                }
            }
            copyReady.withLock { $0 = same }
        }
        var types: [String] = []
        for (index, column) in columns.enumerated() {
            if let forced = explicitTypes[index], !forced.contains("[") {
                types.append(forced)
            } else if explicitTypes[index] == nil, let entry = catalog[column.name], !entry.isArray {
                types.append(entry.type)
            } else {
                logger.info(
                    "postgres column \(column.name) is an array or of unknown type; writing with multi-row VALUES",
                    metadata: ["target": "\(name)"])
                return
            }
        }
        arrayTypes.withLock { $0 = types }
        logger.debug("postgres writes with unnest", metadata: ["target": "\(name)", "types": "\(types.joined(separator: ", "))"])
    }

    /// `INSERT ... SELECT * FROM unnest($1::t1[], ...)` for the columns' element types.
    func unnestStatement(_ types: [String]) -> String {
        let arrays = types.enumerated().map { "$\($0.offset + 1)::\($0.element)[]" }.joined(separator: ", ")
        return "INSERT INTO \(table) (\(quotedColumnList)) SELECT * FROM unnest(\(arrays))" + conflictClause
    }

    /// One text array literal per column (`{"a","b",NULL}`, quotes and backslashes escaped),
    /// NUL-terminated, for the rows at `indices`.
    func arrayParameters(_ indices: ArraySlice<Int>, _ rows: Rows) -> [[UInt8]] {
        rows.blob.withUnsafeBufferPointer { blob in
            (0..<columns.count).map { column in
                var literal: [UInt8] = [UInt8(ascii: "{")]
                literal.reserveCapacity(indices.count * 24)
                for (position, index) in indices.enumerated() {
                    if position > 0 { literal.append(UInt8(ascii: ",")) }
                    let offset = rows.offset(row: index, column: column)
                    if offset < 0 {
                        literal.append(contentsOf: [UInt8(ascii: "N"), UInt8(ascii: "U"), UInt8(ascii: "L"), UInt8(ascii: "L")])
                        continue
                    }
                    literal.append(UInt8(ascii: "\""))
                    Self.appendEscaped(blob, from: offset, escapes: Self.arrayEscapes, into: &literal)
                    literal.append(UInt8(ascii: "\""))
                }
                literal.append(UInt8(ascii: "}"))
                literal.append(0)
                return literal
            }
        }
    }

    /// When COPY is tried: always, until it fails on the data; then it is skipped for `skip`
    /// batches, a pause that doubles with every further failure (up to 1024) and halves with
    /// every success.
    struct CopyGate {
        var skip = 0
        var pause = 0

        mutating func allows() -> Bool {
            if skip == 0 { return true }
            skip -= 1
            return false
        }

        mutating func failed() {
            pause = min(max(pause * 2, 4), 1024)
            skip = pause
        }

        mutating func succeeded() { pause /= 2 }
    }

    /// Per byte value, the character written after a backslash to escape it, or 0 to copy the
    /// byte as it is: quotes and backslashes in an array literal element, and backslash, tab,
    /// newline and carriage return in COPY text.
    static let arrayEscapes: [UInt8] = escapeTable(["\"": "\"", "\\": "\\"])
    static let copyEscapes: [UInt8] = escapeTable(["\\": "\\", "\t": "t", "\n": "n", "\r": "r"])

    static func escapeTable(_ escapes: [Unicode.Scalar: Unicode.Scalar]) -> [UInt8] {
        var table = [UInt8](repeating: 0, count: 256)
        for (byte, escaped) in escapes { table[Int(byte.value)] = UInt8(escaped.value) }
        return table
    }

    /// Appends the NUL-terminated value at `blob[offset...]`, escaped by `escapes`, copying runs
    /// of plain bytes at once.
    static func appendEscaped(_ blob: UnsafeBufferPointer<UInt8>, from offset: Int, escapes: [UInt8], into output: inout [UInt8]) {
        escapes.withUnsafeBufferPointer { escapes in
            var run = offset
            var cursor = offset
            while true {
                let byte = blob[cursor]
                if byte == 0 || escapes[Int(byte)] != 0 {
                    if cursor > run { output.append(contentsOf: UnsafeBufferPointer(rebasing: blob[run..<cursor])) }
                    if byte == 0 { return }
                    output.append(UInt8(ascii: "\\"))
                    output.append(escapes[Int(byte)])
                    run = cursor + 1
                }
                cursor += 1
            }
        }
    }

    /// The rows at `indices` as COPY text: tab-separated, one line each, `\N` for NULL, and
    /// backslash, tab, newline and carriage return escaped.
    func copyData(_ indices: ArraySlice<Int>, _ rows: Rows) -> [UInt8] {
        var data: [UInt8] = []
        data.reserveCapacity(rows.blob.count + indices.count * 2)
        rows.blob.withUnsafeBufferPointer { blob in
            for index in indices {
                for column in 0..<columns.count {
                    if column > 0 { data.append(UInt8(ascii: "\t")) }
                    let offset = rows.offset(row: index, column: column)
                    if offset < 0 {
                        data.append(UInt8(ascii: "\\"))
                        data.append(UInt8(ascii: "N"))
                        continue
                    }
                    Self.appendEscaped(blob, from: offset, escapes: Self.copyEscapes, into: &data)
                }
                data.append(UInt8(ascii: "\n"))
            }
        }
        return data
    }

    func statement(rows count: Int) -> String {
        var sql = insertPrefix
        sql.reserveCapacity(insertPrefix.count + count * columns.count * 8 + conflictClause.count)
        var parameter = 1
        for row in 0..<count {
            sql += row == 0 ? "(" : ", ("
            for column in columns.indices {
                if column > 0 { sql += ", " }
                sql += "$\(parameter)\(placeholderCasts[column])"
                parameter += 1
            }
            sql += ")"
        }
        return sql + conflictClause
    }

    func insert(_ indices: ArraySlice<Int>, _ rows: Rows, on connection: PostgresConnection) -> Result<Int, PostgresConnection.Failure> {
        if let types = arrayTypes.withLock({ $0 }) {
            let literals = arrayParameters(indices, rows)
            return Self.withPointers(literals) { connection.execute(unnestStatement(types), parameters: $0) }
        }
        let sql = statement(rows: indices.count)
        return rows.blob.withUnsafeBufferPointer { buffer in
            let base = UnsafeRawPointer(buffer.baseAddress!)
            var parameters: [UnsafePointer<CChar>?] = []
            parameters.reserveCapacity(indices.count * columns.count)
            for index in indices {
                for offset in rows.row(index) {
                    parameters.append(offset < 0 ? nil : (base + offset).assumingMemoryBound(to: CChar.self))
                }
            }
            return connection.execute(sql, parameters: parameters)
        }
    }

    /// Calls `body` with C pointers to each NUL-terminated buffer of `buffers`.
    static func withPointers<R>(_ buffers: [[UInt8]], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
        func step(_ index: Int, _ pointers: inout [UnsafePointer<CChar>?]) -> R {
            if index == buffers.count { return body(pointers) }
            return buffers[index].withUnsafeBufferPointer { buffer in
                pointers.append(UnsafeRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self))
                return step(index + 1, &pointers)
            }
        }
        var pointers: [UnsafePointer<CChar>?] = []
        return step(0, &pointers)
    }

    func run(_ sql: String, on connection: PostgresConnection) throws {
        if case .failure(let failure) = connection.execute(sql) { throw failure.error(table: table) }
    }

    func writeBatch(_ messages: [Message], on connection: PostgresConnection) throws -> WriteResult {
        let (rows, order, rejected) = render(messages)
        if order.isEmpty { return WriteResult(failures: rejected) }
        if copyReady.withLock({ $0 }) && copyGate.withLock({ $0.allows() }) {
            let data = copyData(order[...], rows)
            switch data.withUnsafeBytes({ connection.copyIn(copyStatement, $0) }) {
            case .success:
                copyGate.withLock { $0.succeeded() }
                pathCounts.withLock { $0.copy += 1 }
                return WriteResult(failures: rejected)
            case .failure(let failure) where failure.isRowError:
                // Nothing of the COPY was stored; the statements resolve conflicts and isolate rows.
                let pause = copyGate.withLock { gate in
                    gate.failed(); return gate.skip
                }
                logger.debug(
                    "postgres COPY refused the batch; writing it with statements",
                    metadata: ["target": "\(name)", "error": "\(failure.text)", "copySkipsBatches": "\(pause)"])
            case .failure(let failure):
                throw failure.error(table: table)
            }
        }
        pathCounts.withLock { $0.statements += 1 }
        let perStatement = arrayTypes.withLock { $0 } == nil ? rowsPerStatement : order.count
        let chunks = stride(from: 0, to: order.count, by: perStatement).map { order[$0..<min($0 + perStatement, order.count)] }
        // Fast path: every statement in one transaction.
        try run("BEGIN", on: connection)
        var needsIsolation = false
        for chunk in chunks {
            if case .failure(let failure) = insert(chunk, rows, on: connection) {
                if failure.isRowError {
                    needsIsolation = true
                    break
                }
                if !failure.connectionLost { _ = connection.execute("ROLLBACK") }
                throw failure.error(table: table)
            }
        }
        if !needsIsolation {
            try run("COMMIT", on: connection)
            return WriteResult(failures: rejected)
        }
        // Slow path: replay with a savepoint per statement, bisecting failed statements.
        try run("ROLLBACK", on: connection)
        try run("BEGIN", on: connection)
        var failures = rejected
        do {
            for chunk in chunks {
                try isolate(chunk, rows, on: connection, into: &failures)
            }
        } catch {
            if connection.connection != nil { _ = connection.execute("ROLLBACK") }
            throw error
        }
        try run("COMMIT", on: connection)
        failures.sort { $0.index < $1.index }
        return WriteResult(failures: failures)
    }

    func isolate(
        _ indices: ArraySlice<Int>, _ rows: Rows, on connection: PostgresConnection,
        into failures: inout [(index: Int, error: ConnectorError)]
    ) throws {
        try run("SAVEPOINT switchyard_rows", on: connection)
        switch insert(indices, rows, on: connection) {
        case .success:
            try run("RELEASE SAVEPOINT switchyard_rows", on: connection)
        case .failure(let failure) where failure.isRowError:
            try run("ROLLBACK TO SAVEPOINT switchyard_rows; RELEASE SAVEPOINT switchyard_rows", on: connection)
            if indices.count == 1 {
                failures.append((indices.first!, .permanent("postgres rejected the row: \(failure.text)")))
            } else {
                let middle = indices.startIndex + indices.count / 2
                try isolate(indices[..<middle], rows, on: connection, into: &failures)
                try isolate(indices[middle...], rows, on: connection, into: &failures)
            }
        case .failure(let failure):
            throw failure.error(table: table)
        }
    }
}
