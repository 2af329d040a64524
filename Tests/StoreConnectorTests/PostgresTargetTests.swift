import Foundation
import Testing
import SwitchyardCore
@testable import PostgresConnector

/// The `postgres` target against the test bed's PostgreSQL, checked with psql.
@Suite("Postgres target", .serialized)
struct PostgresTargetTests {
    typealias Node = StoreBed.Node
    let url: String
    let host: String
    let port: String

    init() throws {
        url = try StoreBed.value("SWITCHYARD_POSTGRES_URL")
        host = try StoreBed.value("SWITCHYARD_POSTGRES_HOST")
        port = try StoreBed.value("SWITCHYARD_POSTGRES_PORT")
    }

    var kind: TargetKind { PostgresConnectors.family.targets[0] }

    /// Runs SQL with psql; returns unaligned, tuples-only output.
    @discardableResult
    func psql(_ sql: String) throws -> String {
        let result = try StoreBed.run("psql", [url, "-X", "-v", "ON_ERROR_STOP=1", "-tA", "-F", "|", "-c", sql])
        #expect(result.status == 0, "psql failed on \(sql): \(result.error)")
        return result.output
    }

    func makeTable(_ definition: String) throws -> String {
        let table = StoreBed.unique("orders")
        try psql("CREATE TABLE \(table) (\(definition))")
        return table
    }

    func open(_ options: [(String, Node)]) async throws -> any Target {
        let target = try StoreBed.make(kind, [("url", .text(url))] + options)
        try await target.open()
        return target
    }

    static func orders(_ ids: some Sequence<Int>, total: (Int) -> String = { "\($0 * 10)" }) -> [Message] {
        ids.map { StoreBed.message(key: "k\($0)", value: "{\"id\": \($0), \"total\": \(total($0))}", offset: Int64($0)) }
    }

    @Test func insertWritesEveryRow() async throws {
        let table = try makeTable("id bigint, total numeric, doc jsonb, k text")
        let target = try await open([
            ("table", .text("public.\(table)")),
            (
                "columns",
                .object([
                    ("id", .text("{{ json.id }}")), ("total", .text("{{ json.total }}")), ("doc", .text("{{ value }}")),
                    ("k", .text("{{ key }}")),
                ])
            ),
        ])
        #expect(try await target.write(Self.orders(0..<300)).failures.isEmpty)
        #expect(try psql("SELECT count(*), sum(total), count(DISTINCT id) FROM \(table)") == "300|448500|300")
        #expect(try psql("SELECT doc->>'total', k FROM \(table) WHERE id = 7") == "70|k7")
        await target.close()
    }

    @Test func upsertIsIdempotentUnderRedeliveryAndUpdatesNonKeyColumns() async throws {
        let table = try makeTable("id bigint PRIMARY KEY, total numeric, doc jsonb")
        let target = try await open([
            ("table", .text(table)), ("mode", .text("upsert")), ("conflictColumns", .list([.text("id")])),
            ("columns", .object([("id", .text("{{ json.id }}")), ("total", .text("{{ json.total }}")), ("doc", .text("{{ value }}"))])),
            ("types", .object([("doc", .text("jsonb"))])),
        ])
        let batch = Self.orders(0..<200)
        #expect(try await target.write(batch).failures.isEmpty)
        #expect(try await target.write(batch).failures.isEmpty)
        #expect(try psql("SELECT count(*), sum(total) FROM \(table)") == "200|199000")
        // A later version of a row replaces it; two versions in one batch: the later one wins.
        let updates = Self.orders([5, 6], total: { _ in "1" }) + Self.orders([6], total: { _ in "2" })
        #expect(try await target.write(updates).failures.isEmpty)
        #expect(try psql("SELECT id, total FROM \(table) WHERE id IN (5, 6) ORDER BY id") == "5|1\n6|2")
        #expect(try psql("SELECT count(*) FROM \(table)") == "200")
        await target.close()
    }

    @Test func aRowViolatingAConstraintFailsAloneWithTheServersTextAndTheOthersAreWritten() async throws {
        let table = try makeTable("id bigint PRIMARY KEY, total numeric CHECK (total >= 0), doc jsonb")
        let target = try await open([
            ("table", .text(table)),
            ("columns", .object([("id", .text("{{ json.id }}")), ("total", .text("{{ json.total }}")), ("doc", .text("{{ value }}"))])),
        ])
        // Row 17 breaks the check constraint, row 42 is not a number, row 99 is not JSON.
        var batch = Self.orders(0..<120, total: { $0 == 17 ? "-5" : ($0 == 42 ? "\"lots\"" : "\($0)") })
        batch[99] = StoreBed.message(value: "{\"id\": 99, \"total\": 1", offset: 99)
        let result = try await target.write(batch)
        #expect(result.failures.map(\.index) == [17, 42, 99])
        #expect(result.failures.allSatisfy { $0.error.kind == .permanent })
        let messages = result.failures.map(\.error.message)
        #expect(messages[0].contains("violates check constraint") && messages[0].contains("23514"))
        #expect(messages[1].contains("invalid input syntax for type numeric") && messages[1].contains("22P02"))
        #expect(messages[2].contains("invalid input syntax for type json"))
        #expect(try psql("SELECT count(*) FROM \(table)") == "117")
        #expect(try psql("SELECT count(*) FROM \(table) WHERE id IN (17, 42, 99)") == "0")
        await target.close()
    }

    @Test func aMissingTableIsATargetDownErrorThatNamesIt() async throws {
        let table = StoreBed.unique("missing")
        let target = try StoreBed.make(
            kind, [("url", .text(url)), ("table", .text(table)), ("columns", .object([("id", .text("{{ offset }}"))]))])
        do {
            try await target.open()
            Issue.record("open succeeded on a missing table")
        } catch let error as ConnectorError {
            #expect(error.kind == .targetDown)
            #expect(error.message.contains(table) && error.message.contains("does not exist"))
        }
        if case .down = target.health {} else { Issue.record("health is \(target.health), expected down") }
        do {
            _ = try await target.write(Self.orders(0..<3))
            Issue.record("write succeeded on a missing table")
        } catch let error as ConnectorError {
            #expect(error.kind == .targetDown)
        }
        // Once the table exists, the same target writes.
        try psql("CREATE TABLE \(table) (id bigint)")
        #expect(try await target.write(Self.orders(0..<3)).failures.isEmpty)
        #expect(target.health == .up)
        #expect(try psql("SELECT count(*) FROM \(table)") == "3")
        await target.close()
    }

    @Test func aMissingColumnIsATargetDownError() async throws {
        let table = try makeTable("id bigint")
        let target = try StoreBed.make(
            kind,
            [
                ("url", .text(url)), ("table", .text(table)),
                ("columns", .object([("id", .text("{{ offset }}")), ("nope", .text("{{ value }}"))])),
            ])
        await #expect { try await target.open() } throws: { error in
            (error as? ConnectorError)?.kind == .targetDown && "\(error)".contains("nope")
        }
        await target.close()
    }

    @Test func aWrongPasswordIsATargetDownError() async throws {
        let wrong = url.replacingOccurrences(of: "switchyard:switchyard@", with: "switchyard:not-the-password@")
        let target = try StoreBed.make(
            kind, [("url", .text(wrong)), ("table", .text("t")), ("columns", .object([("id", .text("{{ offset }}"))]))])
        await #expect { try await target.open() } throws: { error in
            guard let error = error as? ConnectorError else { return false }
            return error.kind == .targetDown && error.message.contains("password authentication failed")
                && !error.message.contains("not-the-password")
        }
    }

    @Test func aRefusedConnectionIsRetriable() async throws {
        let target = try StoreBed.make(
            kind,
            [
                ("url", .text("postgres://switchyard:switchyard@127.0.0.1:1/switchyard?connect_timeout=2")), ("table", .text("t")),
                ("columns", .object([("id", .text("{{ offset }}"))])),
            ])
        await #expect { try await target.open() } throws: { error in
            (error as? ConnectorError)?.kind == .retriable
        }
    }

    /// Through COPY, and with `copy: false` through the unnest statement's array literals.
    @Test(arguments: [true, false]) func valuesWithQuotesAndSQLAreStoredVerbatim(copy: Bool) async throws {
        let table = try makeTable("id bigint, body text, k text")
        let target = try await open([
            ("table", .text(table)), ("copy", .plain(copy ? "true" : "false")),
            ("columns", .object([("id", .text("{{ offset }}")), ("body", .text("{{ value }}")), ("k", .text("{{ key }}"))])),
        ])
        let nasty = [
            "'); DROP TABLE \(table); --",
            "Robert'); DELETE FROM \(table) WHERE ('1'='1",
            "$1 $$dollar$$ \\x00 \\\\ \" ' ''",
            "ünïcødé ✓ \t tab",
        ]
        let batch = nasty.enumerated().map { StoreBed.message(key: "'\($0.offset)'", value: $0.element, offset: Int64($0.offset)) }
        #expect(try await target.write(batch).failures.isEmpty)
        let stored = try psql("SELECT body FROM \(table) ORDER BY id").split(separator: "\n").map(String.init)
        #expect(stored == nasty)
        #expect(try psql("SELECT k FROM \(table) WHERE id = 1") == "'1'")
        #expect(counts(target) == (copy ? (1, 0) : (0, 1)))
        await target.close()
    }

    @Test func aNulByteFailsOnlyItsMessage() async throws {
        let table = try makeTable("id bigint, body text")
        let target = try await open([
            ("table", .text(table)), ("columns", .object([("id", .text("{{ offset }}")), ("body", .text("{{ value }}"))])),
        ])
        let batch = [
            Message(value: Array("ok".utf8), offset: 0), Message(value: [65, 0, 66], offset: 1),
            Message(value: Array("fine".utf8), offset: 2),
        ]
        let result = try await target.write(batch)
        #expect(result.failures.map(\.index) == [1])
        #expect(result.failures.first?.error.kind == .permanent)
        #expect(try psql("SELECT string_agg(body, ',' ORDER BY id) FROM \(table)") == "ok,fine")
        await target.close()
    }

    @Test func createTableAndQuotedSchemaQualifiedNames() async throws {
        let schema = StoreBed.unique("Sch")
        try psql("CREATE SCHEMA \"\(schema)\"")
        let target = try await open([
            ("table", .text("\"\(schema)\".\"Order Lines\"")), ("createTable", .plain("true")),
            ("mode", .text("upsert")), ("conflictColumns", .list([.text("Id")])),
            ("columns", .object([("Id", .text("{{ offset }}")), ("doc", .text("{{ value }}")), ("note", .text("{{ headers.note }}"))])),
            ("types", .object([("Id", .text("bigint")), ("doc", .text("jsonb"))])),
            ("nullWhenEmpty", .plain("true")),
        ])
        #expect(try await target.write(Self.orders(0..<10)).failures.isEmpty)
        #expect(try psql("SELECT count(*), count(note), sum(\"Id\") FROM \"\(schema)\".\"Order Lines\"") == "10|0|45")
        #expect(
            try psql("SELECT data_type FROM information_schema.columns WHERE table_schema = '\(schema)' AND column_name = 'doc'") == "jsonb"
        )
        await target.close()
        try psql("DROP SCHEMA \"\(schema)\" CASCADE")
    }

    @Test func aLargeBatchIsSplitBelowTheParameterLimit() async throws {
        let table = try makeTable("id bigint PRIMARY KEY, a text, b text, c text, d text")
        let target = try await open([
            ("table", .text(table)), ("mode", .text("upsert")), ("conflictColumns", .list([.text("id")])),
            (
                "columns",
                .object([
                    ("id", .text("{{ offset }}")), ("a", .text("{{ value }}")), ("b", .text("b")), ("c", .text("c")), ("d", .text("d")),
                ])
            ),
        ])
        // 20,000 rows x 5 columns = 100,000 parameters: more than one statement.
        let batch = (0..<20_000).map { Message(value: Array("v\($0)".utf8), offset: Int64($0)) }
        #expect(try await target.write(batch).failures.isEmpty)
        #expect(try psql("SELECT count(*), max(id) FROM \(table)") == "20000|19999")
        await target.close()
    }

    // MARK: the COPY path

    func counts(_ target: any Target) -> (copy: Int, statements: Int) {
        (target as! PostgresTarget).pathCounts.withLock { $0 }
    }

    @Test func newRowsGoThroughCopyAndExistingKeysFallBackToTheUpsert() async throws {
        let table = try makeTable("id bigint PRIMARY KEY, total numeric, doc jsonb")
        let target = try await open([
            ("table", .text(table)), ("mode", .text("upsert")), ("conflictColumns", .list([.text("id")])),
            ("columns", .object([("id", .text("{{ json.id }}")), ("total", .text("{{ json.total }}")), ("doc", .text("{{ value }}"))])),
            ("types", .object([("doc", .text("jsonb")), ("id", .text("int8"))])),
        ])
        #expect(try await target.write(Self.orders(0..<100)).failures.isEmpty)
        #expect(counts(target) == (1, 0))
        // Half of these keys exist: COPY fails on the first one and stores nothing; the upsert
        // writes all 100 (50 updated, 50 new).
        #expect(try await target.write(Self.orders(50..<150, total: { _ in "7" })).failures.isEmpty)
        #expect(counts(target) == (1, 1))
        #expect(try psql("SELECT count(*), count(*) FILTER (WHERE total = 7), min(id), max(id) FROM \(table)") == "150|100|0|149")
        // COPY is skipped for the next batches (4 after one failure), then tried again.
        for round in 0..<5 {
            #expect(try await target.write(Self.orders((200 + round * 10)..<(210 + round * 10))).failures.isEmpty)
        }
        #expect(counts(target) == (2, 5))
        #expect(try psql("SELECT count(*) FROM \(table)") == "200")
        await target.close()
    }

    @Test func copyEscapesTabsNewlinesBackslashesAndWritesNulls() async throws {
        let table = try makeTable("id bigint, body text, note text")
        let target = try await open([
            ("table", .text(table)), ("nullWhenEmpty", .plain("true")),
            ("columns", .object([("id", .text("{{ offset }}")), ("body", .text("{{ value }}")), ("note", .text("{{ headers.note }}"))])),
        ])
        let bodies = [
            "a\tb", "\\.", "line1\nline2\r\n", "back\\slash \\N \\t", "\\", "tab\tat end\t", "\u{1}\u{b}\u{c} controls", "ünï ✓", "",
        ]
        let batch = bodies.enumerated().map { index, body in
            Message(
                value: Array(body.utf8), headers: index == 0 ? [Header(name: "note", value: Array("n\t1".utf8))] : [], offset: Int64(index))
        }
        #expect(try await target.write(batch).failures.isEmpty)
        #expect(counts(target) == (1, 0))
        let stored = try psql("SELECT encode(convert_to(coalesce(body, '<null>'), 'UTF8'), 'base64') FROM \(table) ORDER BY id")
            .split(separator: "\n").map { String(decoding: Data(base64Encoded: String($0))!, as: UTF8.self) }
        #expect(stored == bodies.dropLast() + ["<null>"])
        #expect(try psql("SELECT count(note), min(note) = E'n\\t1' FROM \(table)") == "1|t")
        await target.close()
    }

    @Test func aForcedCastOrCopyFalseWritesWithStatementsOnly() async throws {
        let table = try makeTable("id bigint, doc text")
        // jsonb into a text column: the cast normalises the JSON, which COPY would not.
        let cast = try await open([
            ("table", .text(table)), ("columns", .object([("id", .text("{{ offset }}")), ("doc", .text("{{ value }}"))])),
            ("types", .object([("doc", .text("jsonb"))])),
        ])
        #expect(try await cast.write([Message(value: Array("{\"b\":1,   \"a\":2}".utf8), offset: 1)]).failures.isEmpty)
        #expect(counts(cast) == (0, 1))
        #expect(try psql("SELECT doc FROM \(table)") == "{\"a\": 2, \"b\": 1}")
        await cast.close()
        let off = try await open([
            ("table", .text(table)), ("copy", .plain("false")),
            ("columns", .object([("id", .text("{{ offset }}")), ("doc", .text("{{ value }}"))])),
        ])
        #expect(try await off.write(Self.orders(0..<10)).failures.isEmpty)
        #expect(counts(off) == (0, 1))
        #expect(try psql("SELECT count(*) FROM \(table)") == "11")
        await off.close()
    }

    // MARK: validation

    @Test func invalidDocumentsNameThePath() {
        let columns: (String, Node) = ("columns", .object([("id", .text("{{ json.id }}"))]))
        let noTable = StoreBed.issues(kind, [("url", .text(url)), columns])
        #expect(noTable.map(\.path) == ["spec.targets[0].postgres.table"])
        let upsert = StoreBed.issues(kind, [("url", .text(url)), ("table", .text("t")), ("mode", .text("upsert")), columns])
        #expect(upsert.map(\.path) == ["spec.targets[0].postgres.conflictColumns"])
        let unknownConflict = StoreBed.issues(
            kind,
            [("url", .text(url)), ("table", .text("t")), ("mode", .text("upsert")), ("conflictColumns", .list([.text("nope")])), columns])
        #expect(unknownConflict.map(\.path) == ["spec.targets[0].postgres.conflictColumns"])
        let badTable = StoreBed.issues(kind, [("url", .text(url)), ("table", .text("a.b.c")), columns])
        #expect(badTable.map(\.path) == ["spec.targets[0].postgres.table"])
        let badType = StoreBed.issues(
            kind, [("url", .text(url)), ("table", .text("t")), columns, ("types", .object([("id", .text("int); DROP TABLE t; --"))]))])
        #expect(badType.map(\.path) == ["spec.targets[0].postgres.types.id"])
        let emptyTemplate = StoreBed.issues(kind, [("url", .text(url)), ("table", .text("t")), ("columns", .object([("id", .text(""))]))])
        #expect(emptyTemplate.map(\.path) == ["spec.targets[0].postgres.columns.id"])
        let badTemplate = StoreBed.issues(
            kind, [("url", .text(url)), ("table", .text("t")), ("columns", .object([("id", .text("{{ nothing }}"))]))])
        #expect(badTemplate.map(\.path) == ["spec.targets[0].postgres.columns.id"])
        let noColumns = StoreBed.issues(kind, [("url", .text(url)), ("table", .text("t"))])
        #expect(noColumns.map(\.path) == ["spec.targets[0].postgres.columns"])
    }

    @Test func identifiersAreQuoted() {
        #expect(PostgresIdentifier.parseQualified("public.orders") == ["public", "orders"])
        #expect(PostgresIdentifier.parseQualified("\"My \"\"Schema\"\"\".t") == ["My \"Schema\"", "t"])
        #expect(PostgresIdentifier.parseQualified("a;b") == ["a;b"])
        #expect(PostgresIdentifier.quoteQualified(["a\"b", "c"]) == "\"a\"\"b\".\"c\"")
        #expect(PostgresIdentifier.parseQualified("a b") == nil)
        #expect(PostgresIdentifier.isTypeName("numeric(12, 2)"))
        #expect(PostgresIdentifier.isTypeName("timestamp with time zone"))
        #expect(!PostgresIdentifier.isTypeName("int; drop"))
    }

    // MARK: through the runtime

    @Test func generateToPostgresThroughTheRuntimeUpsertsAndDeadLettersBadRows() async throws {
        let table = try makeTable("id bigint PRIMARY KEY, shard int, doc jsonb CHECK ((doc->>'id')::bigint <> 500)")
        let deadLetters = FileManager.default.temporaryDirectory.appendingPathComponent(StoreBed.unique("dlq") + ".ndjson")
        defer { try? FileManager.default.removeItem(at: deadLetters) }
        let document = """
            apiVersion: switchyard.dev/v1alpha1
            kind: Connector
            metadata: {name: postgres-e2e}
            spec:
              sources:
                - name: gen
                  generate: {count: 2000, batchSize: 250, value: '{"id": {{ offset }}, "shard": {{ partition }}}'}
              targets:
                - name: db
                  postgres:
                    url: "\(url)"
                    table: \(table)
                    mode: upsert
                    conflictColumns: [id]
                    columns: {id: "{{ json.id }}", shard: "{{ partition }}", doc: "{{ value }}"}
                - name: dlq
                  file: {path: "\(deadLetters.path)"}
              routes:
                - {from: [gen], to: [db]}
              delivery: {deadLetter: dlq}
              observability: {listen: ""}
            """
        let run = try await StoreBed.runDocument(document)
        #expect(run.status == 0, "switchyard exited \(run.status): \(run.log.suffix(2000))")
        #expect(try psql("SELECT count(*), min(id), max(id) FROM \(table)") == "1999|0|1999")
        let lines = (try? String(contentsOf: deadLetters, encoding: .utf8))?.split(separator: "\n") ?? []
        #expect(lines.count == 1)
        #expect(lines.first?.contains("violates check constraint") == true)
        // Running the same document again (a redelivery of everything) leaves the same rows.
        let again = try await StoreBed.runDocument(document)
        #expect(again.status == 0)
        #expect(try psql("SELECT count(*) FROM \(table)") == "1999")
    }
}
