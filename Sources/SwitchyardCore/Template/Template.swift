#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A per-message `{{ ... }}` template, compiled once when the document loads.
///
/// Variables: `key`, `value`, `channel`, `partition`, `offset`, `session` (16 hex digits: the
/// numbering the position belongs to, see ``Message/session``), `timestamp` (milliseconds),
/// `headers.NAME` (or `headers['NAME']`), `json.PATH` (a path into a JSON value, e.g.
/// `json.order.items[0].id`). Filters: `date: 'yyyy/MM/dd/HH'` (UTC), `default: 'text'`,
/// `lower`, `upper`. A missing header or JSON path renders as empty text.
public struct Template: Sendable, CustomStringConvertible {
    enum Variable: Sendable, Equatable {
        case key, value, channel, partition, offset, session, timestamp
        case header(String)
        case json([JSONPathComponent])
    }

    enum Filter: Sendable {
        case date(DatePattern)
        case fallback([UInt8])
        case lower
        case upper
    }

    struct Expression: Sendable {
        var variable: Variable
        var filters: [Filter]
    }

    enum Part: Sendable {
        case literal([UInt8])
        case expression(Expression)
    }

    /// One step of rendering, trivially copyable so that the hot loop does no reference
    /// counting: literal text is a range of `literals`; an expression with filters, a header
    /// or a JSON path (which need their own data) is an index into `parts`.
    enum Op: Sendable {
        case literal(start: Int, count: Int)
        case key, value, channel, partition, offset, session, timestamp
        case part(Int)
    }

    /// The text as written.
    public let source: String
    let parts: [Part]
    let ops: [Op]
    let literals: [UInt8]

    public var description: String { source }

    /// The rendered bytes when the template has no expression.
    public var constant: [UInt8]? {
        if parts.isEmpty { return [] }
        if parts.count == 1, case .literal(let bytes) = parts[0] { return bytes }
        return nil
    }

    /// Whether the template reads `offset` without `session`: as an identity it names different
    /// messages alike when positions restart (see ``Message/session``).
    public var readsOffsetWithoutSession: Bool {
        var offset = false
        var session = false
        for case .expression(let expression) in parts {
            if expression.variable == .offset { offset = true }
            if expression.variable == .session { session = true }
        }
        return offset && !session
    }

    /// Whether the template reads nothing of a message but its channel (so that rendering it
    /// with a channel alone gives what every message of that channel renders).
    public var readsOnlyChannel: Bool {
        parts.allSatisfy { part in
            if case .expression(let expression) = part { return expression.variable == .channel }
            return true
        }
    }

    /// Whether the template reads the message value as JSON.
    public var usesJSON: Bool {
        parts.contains { part in
            if case .expression(let expression) = part, case .json = expression.variable { return true }
            return false
        }
    }

    /// Compiles `text`; throws a ``TemplateError`` naming the column of the mistake.
    public init(_ text: String) throws(TemplateError) {
        source = text
        parts = try TemplateParser(text).parse()
        var ops: [Op] = []
        var literals: [UInt8] = []
        for (index, part) in parts.enumerated() {
            switch part {
            case .literal(let bytes):
                ops.append(.literal(start: literals.count, count: bytes.count))
                literals.append(contentsOf: bytes)
            case .expression(let expression) where expression.filters.isEmpty:
                switch expression.variable {
                case .key: ops.append(.key)
                case .value: ops.append(.value)
                case .channel: ops.append(.channel)
                case .partition: ops.append(.partition)
                case .offset: ops.append(.offset)
                case .session: ops.append(.session)
                case .timestamp: ops.append(.timestamp)
                case .header, .json: ops.append(.part(index))
                }
            case .expression:
                ops.append(.part(index))
            }
        }
        self.ops = ops
        self.literals = literals
    }

    /// Renders the template for `message`, appending to `output`.
    ///
    /// An expression without filters is appended straight from the message (numbers written
    /// as digits in place), without an intermediate buffer: this runs once per message and
    /// template on every target's hot path.
    public func render(_ message: Message, into output: inout [UInt8]) {
        literals.withUnsafeBufferPointer { literals in
            ops.withUnsafeBufferPointer { ops in
                for op in ops {
                    switch op {
                    case .literal(let start, let count):
                        output.append(contentsOf: UnsafeBufferPointer(rebasing: literals[start..<(start + count)]))
                    case .key: if let key = message.key { output.append(contentsOf: key) }
                    case .value: output.append(contentsOf: message.value)
                    case .channel: output.append(contentsOf: message.channel.utf8)
                    case .partition: DecimalDigits.append(Int64(message.partition), to: &output)
                    case .offset: DecimalDigits.append(message.offset, to: &output)
                    case .session: PositionSession.appendHex(message.session, to: &output)
                    case .timestamp: DecimalDigits.append(message.timestamp, to: &output)
                    case .part(let index):
                        if case .expression(let expression) = parts[index] { renderFiltered(expression, message, into: &output) }
                    }
                }
            }
        }
    }

    func renderFiltered(_ expression: Expression, _ message: Message, into output: inout [UInt8]) {
        var piece = Self.resolve(expression.variable, message)
        var isTimestamp = expression.variable == .timestamp
        for filter in expression.filters {
            switch filter {
            case .date(let pattern):
                if isTimestamp {
                    piece = pattern.format(millis: message.timestamp)
                    isTimestamp = false
                }
            case .fallback(let text):
                if piece.isEmpty { piece = text }
            case .lower:
                piece = piece.map { $0 >= 65 && $0 <= 90 ? $0 + 32 : $0 }
            case .upper:
                piece = piece.map { $0 >= 97 && $0 <= 122 ? $0 - 32 : $0 }
            }
        }
        output.append(contentsOf: piece)
    }

    public func render(_ message: Message) -> [UInt8] {
        if let constant { return constant }
        var output: [UInt8] = []
        output.reserveCapacity(estimatedSize(message))
        render(message, into: &output)
        return output
    }

    /// A close upper estimate of the rendered size, so the buffer is allocated once and not
    /// much larger than needed.
    func estimatedSize(_ message: Message) -> Int {
        var size = 0
        for part in parts {
            switch part {
            case .literal(let bytes): size += bytes.count
            case .expression(let expression):
                switch expression.variable {
                case .value, .json: size += message.value.count
                case .key: size += message.key?.count ?? 0
                case .channel: size += message.channel.utf8.count
                case .header(let name): size += message.header(name)?.count ?? 0
                case .partition, .offset, .session, .timestamp: size += 24
                }
            }
        }
        return size
    }

    public func renderString(_ message: Message) -> String {
        String(decoding: render(message), as: UTF8.self)
    }

    static func resolve(_ variable: Variable, _ message: Message) -> [UInt8] {
        switch variable {
        case .key: return message.key ?? []
        case .value: return message.value
        case .channel: return Array(message.channel.utf8)
        case .partition: return Array(String(message.partition).utf8)
        case .offset: return Array(String(message.offset).utf8)
        case .session:
            var digits: [UInt8] = []
            PositionSession.appendHex(message.session, to: &digits)
            return digits
        case .timestamp: return Array(String(message.timestamp).utf8)
        case .header(let name): return message.header(name) ?? []
        case .json(let path): return JSONPath.extract(path, from: message.value) ?? []
        }
    }
}

/// A template that failed to compile.
public struct TemplateError: Error, Sendable, CustomStringConvertible {
    /// 1-based character position in the template text.
    public var column: Int
    public var message: String

    public var description: String { "template error at character \(column): \(message)" }
}

struct TemplateParser {
    let characters: [Character]
    let text: String

    init(_ text: String) {
        self.text = text
        self.characters = Array(text)
    }

    func parse() throws(TemplateError) -> [Template.Part] {
        var parts: [Template.Part] = []
        var literal = ""
        var index = 0
        while index < characters.count {
            if characters[index] == "{", index + 1 < characters.count, characters[index + 1] == "{" {
                guard let close = findClose(from: index + 2) else {
                    throw TemplateError(column: index + 1, message: "'{{' is never closed with '}}'")
                }
                if !literal.isEmpty {
                    parts.append(.literal(Array(literal.utf8)))
                    literal = ""
                }
                let inner = String(characters[(index + 2)..<close])
                parts.append(.expression(try parseExpression(inner, column: index + 3)))
                index = close + 2
            } else if characters[index] == "}", index + 1 < characters.count, characters[index + 1] == "}" {
                throw TemplateError(column: index + 1, message: "'}}' without a matching '{{'")
            } else {
                literal.append(characters[index])
                index += 1
            }
        }
        if !literal.isEmpty { parts.append(.literal(Array(literal.utf8))) }
        return parts
    }

    func findClose(from start: Int) -> Int? {
        var index = start
        var quote: Character?
        while index + 1 < characters.count {
            let character = characters[index]
            if let open = quote {
                if character == open { quote = nil }
            } else if character == "'" || character == "\"" {
                quote = character
            } else if character == "}" && characters[index + 1] == "}" {
                return index
            }
            index += 1
        }
        return nil
    }

    func parseExpression(_ inner: String, column: Int) throws(TemplateError) -> Template.Expression {
        let pieces = splitOutsideQuotes(inner, separator: "|")
        let head = pieces[0].trimmed
        guard !head.isEmpty else { throw TemplateError(column: column, message: "empty expression") }
        let variable = try parseVariable(head, column: column)
        var filters: [Template.Filter] = []
        for piece in pieces.dropFirst() {
            let filterText = piece.trimmed
            let nameEnd = filterText.firstIndex(of: ":") ?? filterText.endIndex
            let name = filterText[..<nameEnd].trimmed
            let argumentText = nameEnd < filterText.endIndex ? filterText[filterText.index(after: nameEnd)...].trimmed : nil
            let argument = try argumentText.map { text throws(TemplateError) in try parseQuoted(text, column: column) }
            switch name {
            case "date":
                guard let argument else {
                    throw TemplateError(column: column, message: "filter 'date' needs a pattern, e.g. date: 'yyyy/MM/dd'")
                }
                guard variable == .timestamp else {
                    throw TemplateError(column: column, message: "filter 'date' applies to 'timestamp' only")
                }
                filters.append(.date(try DatePattern(argument, column: column)))
            case "default":
                guard let argument else {
                    throw TemplateError(column: column, message: "filter 'default' needs a value, e.g. default: 'none'")
                }
                filters.append(.fallback(Array(argument.utf8)))
            case "lower", "upper":
                guard argument == nil else { throw TemplateError(column: column, message: "filter '\(name)' takes no argument") }
                filters.append(name == "lower" ? .lower : .upper)
            default:
                throw TemplateError(column: column, message: "unknown filter '\(name)' (known: date, default, lower, upper)")
            }
        }
        return Template.Expression(variable: variable, filters: filters)
    }

    func parseVariable(_ text: String, column: Int) throws(TemplateError) -> Template.Variable {
        switch text {
        case "key": return .key
        case "value": return .value
        case "channel": return .channel
        case "partition": return .partition
        case "offset": return .offset
        case "session": return .session
        case "timestamp": return .timestamp
        default: break
        }
        if text.hasPrefix("headers.") {
            let name = String(text.dropFirst("headers.".count))
            guard !name.isEmpty else { throw TemplateError(column: column, message: "'headers.' needs a header name") }
            return .header(name)
        }
        if text.hasPrefix("headers[") && text.hasSuffix("]") {
            let name = try parseQuoted(String(text.dropFirst("headers[".count).dropLast()), column: column)
            return .header(name)
        }
        if text == "json" { return .json([]) }
        if text.hasPrefix("json.") || text.hasPrefix("json[") {
            guard let path = JSONPath.parse(text.dropFirst(4)) else {
                throw TemplateError(column: column, message: "bad JSON path '\(text)'")
            }
            return .json(path)
        }
        throw TemplateError(
            column: column,
            message:
                "unknown variable '\(text)' (known: key, value, channel, partition, offset, session, timestamp, headers.NAME, json.PATH)")
    }

    func parseQuoted(_ text: String, column: Int) throws(TemplateError) -> String {
        guard text.count >= 2, let first = text.first, first == "'" || first == "\"", text.last == first else {
            throw TemplateError(column: column, message: "expected a quoted argument, got \(text)")
        }
        return String(text.dropFirst().dropLast())
    }

    func splitOutsideQuotes(_ text: String, separator: Character) -> [String] {
        var pieces: [String] = []
        var current = ""
        var quote: Character?
        for character in text {
            if let open = quote {
                if character == open { quote = nil }
                current.append(character)
            } else if character == "'" || character == "\"" {
                quote = character
                current.append(character)
            } else if character == separator {
                pieces.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        pieces.append(current)
        return pieces
    }
}

extension StringProtocol {
    var trimmed: String {
        var slice = Substring(self)
        while let first = slice.first, first.isWhitespace { slice.removeFirst() }
        while let last = slice.last, last.isWhitespace { slice.removeLast() }
        return String(slice)
    }
}

/// A `date` filter pattern: `yyyy`, `MM`, `dd`, `HH`, `mm`, `ss`, `SSS`; other characters are
/// copied; text in single quotes inside the pattern is copied as is. Always UTC.
struct DatePattern: Sendable {
    enum Token: Sendable {
        case literal(String)
        case year, month, day, hour, minute, second, millisecond
    }

    let tokens: [Token]

    init(_ pattern: String, column: Int) throws(TemplateError) {
        var tokens: [Token] = []
        let characters = Array(pattern)
        var index = 0
        while index < characters.count {
            let character = characters[index]
            if character == "'" {
                // Quoted text is copied as is; '' is a quote.
                guard let close = characters[(index + 1)...].firstIndex(of: "'") else {
                    throw TemplateError(column: column, message: "date pattern '\(pattern)': a quote is never closed")
                }
                tokens.append(.literal(close == index + 1 ? "'" : String(characters[(index + 1)..<close])))
                index = close + 1
                continue
            }
            var run = 1
            while index + run < characters.count && characters[index + run] == character { run += 1 }
            switch (character, run) {
            case ("y", 4): tokens.append(.year)
            case ("M", 2): tokens.append(.month)
            case ("d", 2): tokens.append(.day)
            case ("H", 2): tokens.append(.hour)
            case ("m", 2): tokens.append(.minute)
            case ("s", 2): tokens.append(.second)
            case ("S", 3): tokens.append(.millisecond)
            case ("y", _), ("M", _), ("d", _), ("H", _), ("m", _), ("s", _), ("S", _):
                throw TemplateError(column: column, message: "date pattern '\(pattern)': use yyyy, MM, dd, HH, mm, ss or SSS")
            default:
                tokens.append(.literal(String(repeating: character, count: run)))
            }
            index += run
        }
        self.tokens = tokens
    }

    func format(millis: Int64) -> [UInt8] {
        var seconds = time_t(millis / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        var output: [UInt8] = []
        func pad(_ value: Int, _ width: Int) {
            let digits = String(value)
            for _ in digits.count..<max(width, digits.count) { output.append(UInt8(ascii: "0")) }
            output.append(contentsOf: digits.utf8)
        }
        for token in tokens {
            switch token {
            case .literal(let text): output.append(contentsOf: text.utf8)
            case .year: pad(Int(parts.tm_year) + 1900, 4)
            case .month: pad(Int(parts.tm_mon) + 1, 2)
            case .day: pad(Int(parts.tm_mday), 2)
            case .hour: pad(Int(parts.tm_hour), 2)
            case .minute: pad(Int(parts.tm_min), 2)
            case .second: pad(Int(parts.tm_sec), 2)
            case .millisecond: pad(Int(millis % 1000), 3)
            }
        }
        return output
    }
}
