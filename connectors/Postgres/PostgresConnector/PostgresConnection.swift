import CLibPQ
#if canImport(Glibc)
    import Glibc
#endif
import SwitchyardCore

/// One libpq connection and the serial queue that every call on it runs on.
///
/// `@unchecked Sendable`: `connection` is read and written only by work running on `io`, which
/// is serial, so the `PGconn` is never touched by two threads.
final class PostgresConnection: @unchecked Sendable {
    let io: BlockingQueue
    let conninfo: String
    var connection: OpaquePointer?

    init(conninfo: String, label: String) {
        self.conninfo = conninfo
        io = BlockingQueue(label: label)
    }

    deinit {
        if let connection { PQfinish(connection) }
    }

    /// A failed statement: the SQLSTATE and the server's text, or a lost connection.
    struct Failure: Error {
        var sqlState: String
        var message: String
        var connectionLost: Bool

        /// One row's data cannot be stored (type, constraint, size): only that row fails.
        var isRowError: Bool {
            !connectionLost && (sqlState.hasPrefix("22") || sqlState.hasPrefix("23") || sqlState == "21000" || sqlState.hasPrefix("54"))
        }

        var text: String { sqlState.isEmpty ? message : "\(message) (SQLSTATE \(sqlState))" }

        /// What the core does about it (ARCHITECTURE.md section 3, item 5).
        func error(table: String) -> ConnectorError {
            if connectionLost { return .retriable("lost the connection to postgres: \(message)") }
            switch sqlState {
            case "40001", "40P01", "55P03", "25006", "57P01", "57P02", "57P03":
                return .retriable("postgres: \(text)")
            case "42P01":
                return .targetDown("table \(table) does not exist: \(text)")
            case "42703":
                return .targetDown("a column of table \(table) does not exist: \(text)")
            case "42P10":
                return .targetDown("table \(table) has no unique index on the conflict columns: \(text)")
            default:
                if sqlState.hasPrefix("08") || sqlState.hasPrefix("53") || sqlState.hasPrefix("58") {
                    return .retriable("postgres: \(text)")
                }
                if sqlState.hasPrefix("28") { return .targetDown("postgres refused the credentials: \(text)") }
                return .targetDown("postgres cannot write to \(table): \(text)")
            }
        }
    }

    // MARK: calls made on `io` only

    /// Connects unless already connected. Authentication and unknown databases or roles throw
    /// `targetDown`; anything else (refused, timed out) `retriable`.
    func connectIfNeeded() throws {
        if let connection {
            if PQstatus(connection) == CONNECTION_OK { return }
            disconnect()
        }
        guard let connection = PQconnectdb(conninfo) else { throw ConnectorError.retriable("cannot allocate a postgres connection") }
        guard PQstatus(connection) == CONNECTION_OK else {
            let text = Self.trimmed(PQerrorMessage(connection))
            PQfinish(connection)
            let refused = [
                "password authentication failed", "no pg_hba.conf entry", "does not exist", "permission denied", "password is required",
                "invalid connection option", "invalid URI", "missing \"=\"",
            ]
            if refused.contains(where: { text.contains($0) }) {
                throw ConnectorError.targetDown("postgres refused the connection: \(text)")
            }
            throw ConnectorError.retriable("cannot connect to postgres: \(text)")
        }
        PQsetNoticeProcessor(connection, { _, _ in }, nil)
        self.connection = connection
    }

    /// Leaves no transaction open after a failed batch: rolls back, or drops the connection
    /// when even that fails.
    func endTransaction() {
        guard let connection else { return }
        if PQtransactionStatus(connection) != PQTRANS_IDLE, case .failure = execute("ROLLBACK") {
            disconnect()
        }
    }

    func disconnect() {
        if let connection { PQfinish(connection) }
        connection = nil
    }

    /// Runs SQL without parameters (several statements allowed).
    func execute(_ sql: String) -> Result<Int, Failure> {
        guard let connection else { return .failure(Failure(sqlState: "", message: "not connected", connectionLost: true)) }
        return outcome(PQexec(connection, sql))
    }

    /// Runs one statement with text parameters (`nil` is NULL); returns the affected row count.
    func execute(_ sql: String, parameters: [UnsafePointer<CChar>?]) -> Result<Int, Failure> {
        guard let connection else { return .failure(Failure(sqlState: "", message: "not connected", connectionLost: true)) }
        let result = parameters.withUnsafeBufferPointer { values in
            PQexecParams(connection, sql, Int32(values.count), nil, values.baseAddress, nil, nil, 0)
        }
        return outcome(result)
    }

    /// `COPY ... FROM STDIN` with `data` (text format, rows already escaped) as the whole input;
    /// returns the copied row count. Outside a transaction the COPY is its own: all rows or none.
    func copyIn(_ sql: String, _ data: UnsafeRawBufferPointer) -> Result<Int, Failure> {
        guard let connection else { return .failure(Failure(sqlState: "", message: "not connected", connectionLost: true)) }
        guard let start = PQexec(connection, sql) else { return outcome(nil) }
        if PQresultStatus(start) != PGRES_COPY_IN { return outcome(start) }
        PQclear(start)
        // Chunks of 256 KiB: libpq buffers each one whole before it writes.
        var position = 0
        var sent = true
        while position < data.count && sent {
            let length = min(262_144, data.count - position)
            sent =
                PQputCopyData(connection, data.baseAddress!.advanced(by: position).assumingMemoryBound(to: CChar.self), Int32(length)) == 1
            position += length
        }
        if PQputCopyEnd(connection, sent ? nil : "switchyard could not send the rows") != 1 {
            return outcome(nil)
        }
        // The COPY's own result, then the NULL that ends the command.
        var final: Result<Int, Failure>?
        // `outcome` drops a lost connection, after which the handle must not be used again.
        while self.connection != nil, let result = PQgetResult(connection) {
            let current = outcome(result)
            if final == nil { final = current }
        }
        return final ?? outcome(nil)
    }

    /// Runs one query with text parameters and returns its rows as text (`nil` is NULL).
    func query(_ sql: String, parameters: [String]) -> Result<[[String?]], Failure> {
        guard let connection else { return .failure(Failure(sqlState: "", message: "not connected", connectionLost: true)) }
        let copies = parameters.map { strdup($0) }
        defer { for copy in copies { free(copy) } }
        let values: [UnsafePointer<CChar>?] = copies.map { $0.map { UnsafePointer($0) } }
        let result = values.withUnsafeBufferPointer { values in
            PQexecParams(connection, sql, Int32(values.count), nil, values.baseAddress, nil, nil, 0)
        }
        guard let result, PQresultStatus(result) == PGRES_TUPLES_OK else {
            if case .failure(let failure) = outcome(result) { return .failure(failure) }
            return .failure(Failure(sqlState: "", message: "the query returned no rows", connectionLost: false))
        }
        defer { PQclear(result) }
        var rows: [[String?]] = []
        for row in 0..<PQntuples(result) {
            rows.append(
                (0..<PQnfields(result)).map { column in
                    PQgetisnull(result, row, column) == 1 ? nil : String(cString: PQgetvalue(result, row, column))
                })
        }
        return .success(rows)
    }

    func outcome(_ result: OpaquePointer?) -> Result<Int, Failure> {
        defer { if let result { PQclear(result) } }
        let lost = connection.map { PQstatus($0) != CONNECTION_OK } ?? true
        guard let result else {
            let message = connection.map { Self.trimmed(PQerrorMessage($0)) } ?? "not connected"
            if lost { disconnect() }
            return .failure(Failure(sqlState: "", message: message, connectionLost: true))
        }
        let status = PQresultStatus(result)
        if status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK {
            let rows = Int(String(cString: PQcmdTuples(result))) ?? 0
            return .success(rows)
        }
        let state = Self.field(result, "C")
        var message = Self.field(result, "M")
        if message.isEmpty { message = Self.trimmed(PQresultErrorMessage(result)) }
        let detail = Self.field(result, "D")
        if !detail.isEmpty { message += ": \(detail)" }
        if lost {
            disconnect()
            return .failure(Failure(sqlState: state, message: message.isEmpty ? "connection closed" : message, connectionLost: true))
        }
        return .failure(Failure(sqlState: state, message: message, connectionLost: false))
    }

    static func field(_ result: OpaquePointer, _ code: Character) -> String {
        guard let pointer = PQresultErrorField(result, Int32(code.asciiValue!)) else { return "" }
        return String(cString: pointer)
    }

    static func trimmed(_ pointer: UnsafeMutablePointer<CChar>?) -> String {
        guard let pointer else { return "" }
        var text = String(cString: pointer)
        while let last = text.last, last.isWhitespace { text.removeLast() }
        return String(text.map { $0 == "\n" ? " " : $0 })
    }
}
