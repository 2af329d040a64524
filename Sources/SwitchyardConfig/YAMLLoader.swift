import SwitchyardCore
import Yams

/// Parses YAML text into a ``ConfigNode`` tree that remembers lines.
///
/// A document may come from anyone who can edit a ConfigMap, so what it may cost is bounded
/// (``Limits``): its size, its nesting, and the number of values it holds once its aliases are
/// expanded (a "billion laughs" document of a few hundred bytes would expand to billions). A
/// document over a bound is refused with the line where the bound was crossed, after work
/// proportional to the bound, not to the expansion.
public enum YAMLLoader {
    /// What one document may cost. docs/configuration.md, "Limits", states them.
    public enum Limits {
        /// Bytes of the document text (1 MiB).
        public static let documentBytes = 1 << 20
        /// Levels of nested objects and lists.
        public static let depth = 64
        /// Values (scalars, objects, lists), counting each use of an alias as a copy of what
        /// it names.
        public static let nodes = 100_000
    }

    public static func parse(_ text: String) -> Result<ConfigNode, ConfigIssue> {
        parseAll(text).mapError { $0.issues[0] }
    }

    /// Parses `text`; on failure returns the problems found (at least one). Every key set twice
    /// is reported, each with its path and the lines of both settings.
    public static func parseAll(_ text: String) -> Result<ConfigNode, DocumentErrors> {
        if let issue = YAMLPrecheck.check(text) {
            return .failure(DocumentErrors([issue]))
        }
        var text = text
        var duplicates: [Duplicate] = []
        while true {
            do {
                guard let root = try Yams.compose(yaml: text) else {
                    return .failure(DocumentErrors([ConfigIssue(path: "document", line: 1, message: "the document is empty")]))
                }
                var converter = Converter(aliasLine: YAMLPrecheck.firstAliasLine(text))
                let node = converter.convert(root, depth: 0)
                if let issue = converter.issue { return .failure(DocumentErrors([issue])) }
                if !duplicates.isEmpty { return .failure(DocumentErrors(duplicateIssues(node, duplicates))) }
                return .success(node)
            } catch YamlError.duplicatedKeysInMapping(let keys, let context) {
                // Rename the first setting of the key and parse again, until no key is set twice
                // (each round removes one), so that all of them are reported with their paths.
                // Each round parses the whole document again: at most `duplicateRounds` of them.
                guard duplicates.count < duplicateRounds, let key = keys.first,
                    let renamed = rename(
                        in: text, line: context.mark.line, column: context.mark.column, key: key,
                        to: Duplicate.placeholder(duplicates.count))
                else {
                    let found = duplicates.map {
                        ConfigIssue(
                            path: "document", line: $0.firstLine, message: "\(ConfigText.quoted($0.key)) is set twice in one object")
                    }
                    return .failure(
                        DocumentErrors(
                            found + [
                                ConfigIssue(
                                    path: "document", line: context.mark.line,
                                    message:
                                        "a key is set twice in one object: \(keys.map { ConfigText.quoted($0) }.joined(separator: ", "))")
                            ]))
                }
                duplicates.append(Duplicate(key: key, firstLine: context.mark.line))
                text = renamed
            } catch let error as YamlError {
                return .failure(DocumentErrors([issue(for: error)]))
            } catch {
                return .failure(DocumentErrors([ConfigIssue(path: "document", line: nil, message: "not valid YAML: \(error)")]))
            }
        }
    }

    /// Keys set twice that are reported with their paths; any beyond are reported by line.
    static let duplicateRounds = 20

    /// A key set twice in one object, whose first setting was renamed to ``placeholder(_:)``.
    struct Duplicate {
        var key: String
        var firstLine: Int

        static func placeholder(_ index: Int) -> String { "__switchyard_duplicate_\(index)__" }
    }

    /// `text` with the key that starts at `line`:`column` (1-based, in Unicode scalars) renamed,
    /// or nil when the key there is not written as expected (then only the first is reported).
    static func rename(in text: String, line: Int, column: Int, key: String, to placeholder: String) -> String? {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { Array($0.unicodeScalars) }
        guard line >= 1, line <= lines.count, column >= 1, column <= lines[line - 1].count else { return nil }
        let row = lines[line - 1]
        let start = column - 1
        var end: Int
        if row[start] == "\"" || row[start] == "'" {
            guard let close = row[(start + 1)...].firstIndex(of: row[start]) else { return nil }
            end = close + 1
        } else {
            let written = Array(key.unicodeScalars)
            end = start + written.count
            guard end <= row.count, Array(row[start..<end]) == written else { return nil }
        }
        lines[line - 1] = Array(row[..<start]) + Array(placeholder.unicodeScalars) + Array(row[end...])
        return lines.map { String(String.UnicodeScalarView($0)) }.joined(separator: "\n")
    }

    /// One issue per duplicate, at the path of the object that holds it and the line of the
    /// later setting.
    static func duplicateIssues(_ root: ConfigNode, _ duplicates: [Duplicate]) -> [ConfigIssue] {
        var issues: [ConfigIssue] = []
        let isResource = ["apiVersion", "kind", "spec", "metadata"].contains { root[$0] != nil }
        func walk(_ node: ConfigNode, _ path: String) {
            switch node.content {
            case .mapping(let entries):
                for entry in entries {
                    let entryPath = path.isEmpty ? entry.key : "\(path).\(entry.key)"
                    if entry.key.hasPrefix("__switchyard_duplicate_"), let index = Int(entry.key.dropFirst(23).dropLast(2)),
                        index < duplicates.count
                    {
                        let duplicate = duplicates[index]
                        let later = entries.last { $0.key == duplicate.key }
                        issues.append(
                            ConfigIssue(
                                path: path.isEmpty ? duplicate.key : "\(path).\(duplicate.key)",
                                line: later?.keyLine ?? duplicate.firstLine,
                                message:
                                    "\(ConfigText.quoted(duplicate.key)) is set twice in this object (first at line \(duplicate.firstLine))"
                            ))
                        continue
                    }
                    walk(entry.value, entryPath)
                }
            case .sequence(let items):
                for (index, item) in items.enumerated() { walk(item, "\(path)[\(index)]") }
            case .scalar, .null:
                break
            }
        }
        walk(root, isResource ? "" : "spec")
        return issues.isEmpty
            ? [
                ConfigIssue(
                    path: "document", line: duplicates[0].firstLine,
                    message: "a key is set twice in one object: \(ConfigText.quoted(duplicates[0].key))")
            ] : issues
    }

    static func issue(for error: YamlError) -> ConfigIssue {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
            return ConfigIssue(path: "document", line: mark.line, message: "not valid YAML: \(problem) (column \(mark.column))")
        case .duplicatedKeysInMapping(let duplicates, let context):
            return ConfigIssue(
                path: "document", line: context.mark.line,
                message: "a key is set twice in one object: \(duplicates.map { ConfigText.quoted($0) }.joined(separator: ", "))")
        default:
            return ConfigIssue(path: "document", line: nil, message: "not valid YAML: \(error)")
        }
    }

    /// Converts Yams nodes, counting values (aliases expanded) and depth; stops at the first
    /// bound crossed.
    struct Converter {
        var count = 0
        var issue: ConfigIssue?
        let aliasLine: Int?

        init(aliasLine: Int?) {
            self.aliasLine = aliasLine
        }

        mutating func convert(_ node: Node, depth: Int) -> ConfigNode {
            let line = node.mark?.line ?? 0
            guard issue == nil else { return ConfigNode(.null, line: line) }
            count += 1
            if count > Limits.nodes {
                let through =
                    aliasLine.map {
                        " through its aliases (the first is used at line \($0)); each use of an alias counts as a copy of what it names"
                    } ?? ""
                issue = ConfigIssue(
                    path: "document", line: aliasLine ?? line,
                    message: "the document holds more than \(Limits.nodes) values\(through); refused")
                return ConfigNode(.null, line: line)
            }
            if depth > Limits.depth {
                issue = ConfigIssue(
                    path: "document", line: line, message: "objects and lists are nested more than \(Limits.depth) levels deep; refused")
                return ConfigNode(.null, line: line)
            }
            switch node {
            case .scalar(let scalar):
                if scalar.style == .plain
                    && (scalar.string == "" || scalar.string == "~" || scalar.string == "null" || scalar.string == "Null"
                        || scalar.string == "NULL")
                {
                    return ConfigNode(.null, line: line)
                }
                return ConfigNode(.scalar(.init(text: scalar.string, quoted: scalar.style != .plain)), line: line)
            case .sequence(let sequence):
                var items: [ConfigNode] = []
                for item in sequence {
                    items.append(convert(item, depth: depth + 1))
                    if issue != nil { break }
                }
                return ConfigNode(.sequence(items), line: line)
            case .mapping(let mapping):
                var entries: [ConfigNode.Entry] = []
                for pair in mapping {
                    let key = pair.key.string ?? "\(pair.key)"
                    entries.append(
                        ConfigNode.Entry(key: key, keyLine: pair.key.mark?.line ?? line, value: convert(pair.value, depth: depth + 1)))
                    if issue != nil { break }
                }
                return ConfigNode(.mapping(entries), line: line)
            case .alias(let alias):
                return ConfigNode(.null, line: alias.mark?.line ?? line)
            }
        }
    }
}

/// A scan of the raw text before it reaches the YAML parser, for what the parser itself would
/// pay too much for: the size, and mapping keys that are not plain text. The parser compares
/// keys by their whole expanded value, so an alias or a collection used as a key could cost as
/// much as expanding a "billion laughs"; a Switchyard document needs only text keys.
enum YAMLPrecheck {
    static func check(_ text: String) -> ConfigIssue? {
        let bytes = text.utf8
        if bytes.count > YAMLLoader.Limits.documentBytes {
            var line = 1
            for (offset, byte) in bytes.enumerated() {
                if offset >= YAMLLoader.Limits.documentBytes { break }
                if byte == UInt8(ascii: "\n") { line += 1 }
            }
            return ConfigIssue(
                path: "document", line: line,
                message:
                    "the document is \(bytes.count) bytes; at most \(YAMLLoader.Limits.documentBytes) (1 MiB) are accepted, and this line is past that"
            )
        }
        var found: ConfigIssue?
        scan(text) { token, line in
            switch token {
            case .complexKey:
                found = ConfigIssue(
                    path: "document", line: line,
                    message: "a mapping key must be plain text; '?' keys, aliases and lists or objects as keys are not accepted")
                return false
            case .tooDeep:
                found = ConfigIssue(
                    path: "document", line: line,
                    message: "objects and lists are nested more than \(YAMLLoader.Limits.depth) levels deep; refused")
                return false
            case .alias:
                return true
            }
        }
        return found
    }

    /// The line of the first alias (`*name`), if any.
    static func firstAliasLine(_ text: String) -> Int? {
        var first: Int?
        scan(text) { token, line in
            if case .alias = token {
                first = line
                return false
            }
            return true
        }
        return first
    }

    enum Token {
        /// `? key`, `*alias :` or `] :`/`} :`: a key that is not plain text.
        case complexKey
        case alias
        /// Flow collections nested deeper than the limit, or a line indented so far that block
        /// nesting could be (the parser would recurse that deep before the tree is checked).
        case tooDeep
    }

    /// Walks the text outside comments, quoted scalars and block scalars, and reports tokens
    /// to `visit` until it returns false.
    static func scan(_ text: String, _ visit: (Token, Int) -> Bool) {
        let bytes = Array(text.utf8)
        let space = UInt8(ascii: " "), tab = UInt8(ascii: "\t"), newline = UInt8(ascii: "\n"), cr = UInt8(ascii: "\r")
        var index = 0
        var line = 1
        var lineIndent = 0
        var atLineStart = true
        /// Indentation of the line that opened a block scalar (`|` or `>`); deeper lines are its text.
        var blockIndent: Int?
        var previous: UInt8 = newline
        var flowDepth = 0

        func isBlank(_ byte: UInt8) -> Bool { byte == space || byte == tab || byte == newline || byte == cr }
        func tokenStart(_ before: UInt8) -> Bool {
            isBlank(before) || before == UInt8(ascii: "[") || before == UInt8(ascii: "{") || before == UInt8(ascii: ",")
        }
        /// Whether only blanks come before a `:` followed by a blank or the end.
        func followedByColon(_ from: Int) -> Bool {
            var i = from
            while i < bytes.count, bytes[i] == space || bytes[i] == tab { i += 1 }
            guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { return false }
            return i + 1 >= bytes.count || isBlank(bytes[i + 1]) || bytes[i + 1] == UInt8(ascii: ",")
        }

        /// Whether a node may start at `position`: only sequence dashes before it on its line, or
        /// a flow collection's `[`, `{` or `,` right before it.
        func startsNode(_ position: Int) -> Bool {
            var i = position - 1
            while i >= 0, bytes[i] == space || bytes[i] == tab { i -= 1 }
            if i < 0 || bytes[i] == newline { return true }
            if bytes[i] == UInt8(ascii: "[") || bytes[i] == UInt8(ascii: "{") || bytes[i] == UInt8(ascii: ",") { return true }
            while i >= 0, bytes[i] != newline {
                guard bytes[i] == UInt8(ascii: "-") || bytes[i] == space || bytes[i] == tab else { return false }
                i -= 1
            }
            return true
        }

        while index < bytes.count {
            let byte = bytes[index]
            if atLineStart {
                var i = index
                while i < bytes.count, bytes[i] == space { i += 1 }
                let indent = i - index
                let blank = i >= bytes.count || bytes[i] == newline || bytes[i] == cr
                if let open = blockIndent, blank || indent > open {
                    // A line of a block scalar: skip it whole.
                    while i < bytes.count, bytes[i] != newline { i += 1 }
                    index = i + 1
                    line += 1
                    previous = newline
                    continue
                }
                blockIndent = nil
                lineIndent = indent
                // Compact nested lists (`- - - x`) nest without indenting: count their dashes.
                var j = i
                var width = indent
                while j + 1 < bytes.count, bytes[j] == UInt8(ascii: "-"), bytes[j + 1] == space {
                    j += 2
                    while j < bytes.count, bytes[j] == space { j += 1 }
                    width += 8
                }
                if width > 8 * YAMLLoader.Limits.depth, !visit(.tooDeep, line) { return }
                atLineStart = false
                index = i
                previous = space
                continue
            }
            switch byte {
            case newline:
                line += 1
                atLineStart = true
                previous = newline
                index += 1
                continue
            case UInt8(ascii: "#") where isBlank(previous):
                while index < bytes.count, bytes[index] != newline { index += 1 }
                continue
            case UInt8(ascii: "'") where tokenStart(previous), UInt8(ascii: "\"") where tokenStart(previous):
                // A quoted scalar, possibly over several lines.
                let quote = byte
                index += 1
                while index < bytes.count {
                    let c = bytes[index]
                    if c == newline { line += 1 }
                    if quote == UInt8(ascii: "\""), c == UInt8(ascii: "\\") {
                        if index + 1 < bytes.count, bytes[index + 1] == newline { line += 1 }
                        index += 2
                        continue
                    }
                    if c == quote {
                        if quote == UInt8(ascii: "'"), index + 1 < bytes.count, bytes[index + 1] == quote {
                            index += 2
                            continue
                        }
                        break
                    }
                    index += 1
                }
                index += 1
                previous = byte
                continue
            case UInt8(ascii: "?") where tokenStart(previous):
                if index + 1 >= bytes.count || isBlank(bytes[index + 1]), startsNode(index) {
                    if !visit(.complexKey, line) { return }
                }
            case UInt8(ascii: "*") where tokenStart(previous):
                var end = index + 1
                while end < bytes.count, !isBlank(bytes[end]), bytes[end] != UInt8(ascii: ","), bytes[end] != UInt8(ascii: "]"),
                    bytes[end] != UInt8(ascii: "}")
                { end += 1 }
                if end > index + 1 {
                    if !visit(.alias, line) { return }
                    if followedByColon(end), !visit(.complexKey, line) { return }
                }
                previous = bytes[end - 1]
                index = end
                continue
            case UInt8(ascii: "[") where tokenStart(previous) || flowDepth > 0,
                UInt8(ascii: "{") where tokenStart(previous) || flowDepth > 0:
                flowDepth += 1
                if flowDepth > YAMLLoader.Limits.depth, !visit(.tooDeep, line) { return }
            case UInt8(ascii: "]") where flowDepth > 0, UInt8(ascii: "}") where flowDepth > 0:
                flowDepth -= 1
                if followedByColon(index + 1), !visit(.complexKey, line) { return }
            case UInt8(ascii: "|") where tokenStart(previous), UInt8(ascii: ">") where tokenStart(previous):
                // A block scalar when only indicators, blanks or a comment follow on the line.
                var i = index + 1
                while i < bytes.count,
                    bytes[i] == UInt8(ascii: "-") || bytes[i] == UInt8(ascii: "+")
                        || (bytes[i] >= UInt8(ascii: "0") && bytes[i] <= UInt8(ascii: "9"))
                { i += 1 }
                while i < bytes.count, bytes[i] == space || bytes[i] == tab { i += 1 }
                if i >= bytes.count || bytes[i] == newline || bytes[i] == cr || bytes[i] == UInt8(ascii: "#") {
                    blockIndent = lineIndent
                    while i < bytes.count, bytes[i] != newline { i += 1 }
                    index = i
                    continue
                }
            default:
                break
            }
            previous = byte
            index += 1
        }
    }
}
