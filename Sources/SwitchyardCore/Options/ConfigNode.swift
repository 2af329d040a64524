/// A parsed document node with the line it came from.
///
/// The YAML loader builds this tree; `${...}` interpolation rewrites scalar text in place and
/// keeps the original, so errors quote what the user wrote and never a resolved secret.
public struct ConfigNode: Sendable {
    public enum Content: Sendable {
        case null
        case scalar(Scalar)
        case sequence([ConfigNode])
        case mapping([Entry])
    }

    public struct Scalar: Sendable {
        /// The text after interpolation.
        public var text: String
        /// The text as written in the document.
        public var raw: String
        /// Whether the scalar was quoted (a quoted `"true"` is a string, not a boolean).
        public var quoted: Bool
        /// Whether interpolation inserted a file's content or a variable: never echo `text`.
        public var interpolated: Bool
        /// Whether a `${...}` reference could not be resolved (already reported): the decoder
        /// skips the value instead of reporting it a second time.
        public var unresolved = false
        /// What `${env:...}` and `${file:...}` references inserted (never echoed).
        public var inserted: [String] = []

        public init(text: String, raw: String? = nil, quoted: Bool = false, interpolated: Bool = false) {
            self.text = text
            self.raw = raw ?? text
            self.quoted = quoted
            self.interpolated = interpolated
        }
    }

    public struct Entry: Sendable {
        public var key: String
        public var keyLine: Int
        public var value: ConfigNode

        public init(key: String, keyLine: Int, value: ConfigNode) {
            self.key = key
            self.keyLine = keyLine
            self.value = value
        }
    }

    public var content: Content
    /// 1-based line in the document; 0 when unknown.
    public var line: Int

    public init(_ content: Content, line: Int = 0) {
        self.content = content
        self.line = line
    }

    public var kindName: String {
        switch content {
        case .null: "null"
        case .scalar: "scalar"
        case .sequence: "list"
        case .mapping: "object"
        }
    }

    /// The value of the mapping entry called `key`.
    public subscript(key: String) -> ConfigNode? {
        guard case .mapping(let entries) = content else { return nil }
        return entries.first { $0.key == key }?.value
    }

    /// A canonical rendering of the node after interpolation (for change detection only; it
    /// may hold secrets and is never shown).
    public var canonical: String {
        switch content {
        case .null: return "~"
        case .scalar(let scalar): return (scalar.quoted ? "s" : "p") + String(scalar.text.utf8.count) + ":" + scalar.text
        case .sequence(let items): return "[" + items.map(\.canonical).joined(separator: ",") + "]"
        case .mapping(let entries):
            return "{"
                + entries.sorted { $0.key < $1.key }.map { String($0.key.utf8.count) + ":" + $0.key + "=" + $0.value.canonical }.joined(
                    separator: ",") + "}"
        }
    }

    public var scalarText: String? {
        if case .scalar(let scalar) = content { return scalar.text }
        return nil
    }
}

/// One problem found in a document: where, and what.
public struct ConfigIssue: Error, Sendable, Equatable, CustomStringConvertible {
    /// The path from the document root, e.g. `spec.targets[1].file.path`.
    public var path: String
    /// 1-based line, when known.
    public var line: Int?
    public var message: String

    /// Control, direction and line-separator characters in `path` and `message` (which may
    /// quote the document) are escaped, so an issue is always one line that reads as written.
    public init(path: String, line: Int?, message: String) {
        self.path = ConfigText.isPlain(path) ? path : ConfigText.escaped(path, limit: 1000)
        self.line = line
        self.message = ConfigText.isPlain(message) ? message : ConfigText.escaped(message, limit: 4000)
    }

    public var description: String {
        if let line, line > 0 { return "\(path) (line \(line)): \(message)" }
        return "\(path): \(message)"
    }
}
