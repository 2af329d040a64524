import Testing
@testable import SwitchyardCore

@Suite("Templates")
struct TemplateTests {
    let message = Message(
        key: Array("user-7".utf8),
        value: Array(
            #"{"id": 42, "name": "Zoë \"Z\" \u00e9\n", "total": -12.5e1, "ok": true, "none": null, "customer": {"address": {"city": "Lyon"}, "tags": ["vip", "eu"]}, "items": [{"sku": "A1", "qty": 2}, {"sku": "B2", "qty": 1}], "a.b": "dotted"}"#
                .utf8),
        headers: [Header("type", "Order"), Header("trace.id", "abc-123"), Header("type", "second")],
        channel: "orders.eu",
        timestamp: 1_700_000_000_123,  // 2023-11-14T22:13:20.123Z
        partition: 3,
        offset: 1042)

    func render(_ text: String, _ message: Message? = nil) throws -> String {
        try Template(text).renderString(message ?? self.message)
    }

    @Test func messageFieldsRender() throws {
        #expect(try render("{{ key }}") == "user-7")
        #expect(try render("{{channel}}/{{ partition }}-{{ offset }}") == "orders.eu/3-1042")
        #expect(try render("{{ timestamp }}") == "1700000000123")
        #expect(try render("{{ value }}") == String(decoding: message.value, as: UTF8.self))
        #expect(try render("order:{{ key }}:x") == "order:user-7:x")
    }

    @Test func theSessionRendersAsSixteenHexDigits() throws {
        var sessioned = message
        sessioned.session = 0x0123_4567_89ab_cdef
        #expect(try render("{{ session }}/{{ offset }}", sessioned) == "0123456789abcdef/1042")
        #expect(try render("{{ session | upper }}", sessioned) == "0123456789ABCDEF")
        #expect(try render("{{ session }}") == "0000000000000000")
        sessioned.session = .max
        #expect(try render("{{ session }}", sessioned) == "ffffffffffffffff")
    }

    @Test func derivedSessionsAreStableAndNonzero() {
        #expect(PositionSession.derived(from: "sender-a") == PositionSession.derived(from: "sender-a"))
        #expect(PositionSession.derived(from: "sender-a") != PositionSession.derived(from: "sender-b"))
        #expect(PositionSession.derived(from: "") != 0)
        let randoms = Set((0..<1000).map { _ in PositionSession.random() })
        #expect(randoms.count == 1000 && !randoms.contains(0))
    }

    @Test func aMissingKeyRendersEmpty() throws {
        var keyless = message
        keyless.key = nil
        #expect(try render("[{{ key }}]", keyless) == "[]")
    }

    @Test func headersRenderByNameAndByQuotedName() throws {
        #expect(try render("{{ headers.type }}") == "Order")  // the first of repeated headers
        #expect(try render("{{ headers['trace.id'] }}") == "abc-123")
        #expect(try render(#"{{ headers["trace.id"] }}"#) == "abc-123")
        #expect(try render("[{{ headers.missing }}]") == "[]")
    }

    @Test func jsonPathsReachNestedObjectsAndArrays() throws {
        #expect(try render("{{ json.id }}") == "42")
        #expect(try render("{{ json.customer.address.city }}") == "Lyon")
        #expect(try render("{{ json.customer.tags[1] }}") == "eu")
        #expect(try render("{{ json.items[1].sku }}") == "B2")
        #expect(try render("{{ json.items[0].qty }}") == "2")
        #expect(try render("{{ json['a.b'] }}") == "dotted")
    }

    @Test func jsonStringsAreUnescapedAndOtherValuesKeepTheirJSONText() throws {
        #expect(try render("{{ json.name }}") == "Zoë \"Z\" é\n")
        #expect(try render("{{ json.total }}") == "-12.5e1")
        #expect(try render("{{ json.ok }}") == "true")
        #expect(try render("[{{ json.none }}]") == "[]")
        #expect(try render("{{ json.customer.address }}") == #"{"city": "Lyon"}"#)
        #expect(try render("{{ json.customer.tags }}") == #"["vip", "eu"]"#)
    }

    @Test func aMissingJSONPathRendersEmpty() throws {
        #expect(try render("[{{ json.nope }}]") == "[]")
        #expect(try render("[{{ json.items[5].sku }}]") == "[]")
        #expect(try render("[{{ json.id.deeper }}]") == "[]")
        let notJSON = Message(value: Array("plain text".utf8))
        #expect(try render("[{{ json.id }}]", notJSON) == "[]")
    }

    @Test func dateFormatsTheTimestampInUTC() throws {
        #expect(try render("{{ timestamp | date: 'yyyy/MM/dd/HH' }}") == "2023/11/14/22")
        #expect(try render("{{ timestamp | date: 'yyyy-MM-dd HH:mm:ss.SSS' }}") == "2023-11-14 22:13:20.123")
        let january = Message(value: [], timestamp: 0)
        #expect(try render("{{ timestamp | date: 'yyyy/MM/dd/HH' }}", january) == "1970/01/01/00")
    }

    @Test func dateCopiesQuotedTextInThePattern() throws {
        #expect(try render(#"{{ timestamp | date: "yyyy-MM-dd'T'HH" }}"#) == "2023-11-14T22")
        #expect(try render(#"{{ timestamp | date: "'day' dd" }}"#) == "day 14")
    }

    @Test func defaultLowerAndUpperFilters() throws {
        #expect(try render("{{ headers.missing | default: 'none' }}") == "none")
        #expect(try render("{{ headers.type | default: 'none' }}") == "Order")
        #expect(try render("{{ json.nope | default: \"n/a\" }}") == "n/a")
        #expect(try render("{{ headers.type | lower }}") == "order")
        #expect(try render("{{ channel | upper }}") == "ORDERS.EU")
        #expect(try render("{{ headers.missing | default: 'Unknown' | upper }}") == "UNKNOWN")
        // A '|' inside quotes is text, not a filter.
        #expect(try render("{{ headers.missing | default: 'a|b' }}") == "a|b")
    }

    @Test func constantTemplatesAreRecognised() throws {
        #expect(try Template("orders").constant == Array("orders".utf8))
        #expect(try Template("").constant == [])
        #expect(try Template("x-{{ key }}").constant == nil)
        #expect(try Template("{{ json.id }}").usesJSON)
        #expect(try !Template("{{ key }}").usesJSON)
    }

    func compileError(_ text: String) -> TemplateError? {
        do {
            _ = try Template(text)
            return nil
        } catch {
            return error
        }
    }

    @Test func anUnknownVariableIsACompileError() throws {
        let error = try #require(compileError("a-{{ colour }}"))
        #expect(error.message.contains("unknown variable 'colour'"))
        #expect(error.description.contains("colour"))
    }

    @Test func anUnknownFilterIsACompileError() throws {
        let error = try #require(compileError("{{ key | shout }}"))
        #expect(error.message.contains("unknown filter 'shout'"))
    }

    @Test func anUnclosedExpressionIsACompileError() throws {
        let error = try #require(compileError("key-{{ offset"))
        #expect(error.message.contains("never closed"))
        #expect(error.column == 5)
        let stray = try #require(compileError("key }} x"))
        #expect(stray.message.contains("'}}'"))
    }

    @Test func dateOnAnythingButTheTimestampIsACompileError() throws {
        let error = try #require(compileError("{{ offset | date: 'yyyy' }}"))
        #expect(error.message.contains("'date'"))
        #expect(error.message.contains("timestamp"))
    }

    @Test func otherMistakesAreCompileErrors() throws {
        #expect(compileError("{{ }}")?.message.contains("empty") == true)
        #expect(compileError("{{ timestamp | date }}")?.message.contains("pattern") == true)
        #expect(compileError("{{ timestamp | date: 'yy' }}")?.message.contains("yyyy") == true)
        #expect(compileError("{{ key | default }}") != nil)
        #expect(compileError("{{ key | lower: 'x' }}") != nil)
        #expect(compileError("{{ json.items[x] }}")?.message.contains("JSON path") == true)
        #expect(compileError("{{ headers. }}") != nil)
    }

    @Test func decimalDigitsMatchTheStandardLibrary() {
        for value: Int64 in [0, 9, 10, 99, 100, 1_234_567_890, -1, -10, -987_654, .max, .min] {
            var bytes: [UInt8] = Array("x".utf8)
            DecimalDigits.append(value, to: &bytes)
            #expect(String(decoding: bytes, as: UTF8.self) == "x\(value)")
        }
    }

    @Test func literalsAndFieldsInterleaveAndFiltersStillApply() throws {
        let mixed = try Template("a{{ partition }}b{{ offset }}c{{ key | upper }}d{{ timestamp }}{{ channel }}")
        var message = message
        message.partition = 3
        message.offset = 1_000_000_007
        message.timestamp = -5
        #expect(String(decoding: mixed.render(message), as: UTF8.self) == "a3b1000000007cUSER-7d-5orders.eu")
        var output = Array("prefix:".utf8)
        mixed.render(message, into: &output)
        #expect(String(decoding: output, as: UTF8.self) == "prefix:a3b1000000007cUSER-7d-5orders.eu")
    }
}
