#if canImport(Glibc)
    import Glibc
#endif
import SwitchyardCore

/// Replaces `${env:NAME}`, `${env:NAME:-default}` and `${file:PATH}` inside string values,
/// after the YAML was parsed (so a `${...}` in a comment is never read). `$${` writes a
/// literal `${`. Interpolated scalars are marked so that errors never echo their content.
public struct Interpolator: Sendable {
    /// What references may pull into one document. docs/configuration.md, "Limits", states them.
    public enum Limits {
        /// Bytes of one file named by `${file:PATH}` (256 KiB: a password, a token, a
        /// certificate bundle).
        public static let fileBytes = 256 << 10
        /// Bytes all `${env:...}` and `${file:...}` references of one document insert together.
        public static let insertedBytes = 4 << 20
    }

    public var environment: [String: String]
    /// Reads the file a `${file:PATH}` names; by default ``BoundedFile`` with ``Limits/fileBytes``.
    public var readFile: @Sendable (String) -> Result<String, BoundedFile.Failure>

    public init(
        environment: [String: String],
        readFile: @escaping @Sendable (String) -> Result<String, BoundedFile.Failure> = Interpolator.readReferencedFile
    ) {
        self.environment = environment
        self.readFile = readFile
    }

    /// An interpolator whose files come from `readFile` (nil: cannot be read).
    public init(environment: [String: String], readFile: @escaping @Sendable (String) -> String?) {
        self.environment = environment
        self.readFile = { path in
            readFile(path).map { .success($0) } ?? .failure(.cannotOpen(path: path, reason: "no such file"))
        }
    }

    /// Reads a file named by `${file:PATH}`: a regular file of at most ``Limits/fileBytes``.
    @Sendable public static func readReferencedFile(_ path: String) -> Result<String, BoundedFile.Failure> {
        BoundedFile.readText(path, limit: Limits.fileBytes)
    }

    /// Reads a document: a regular file of at most ``YAMLLoader/Limits/documentBytes``.
    @Sendable public static func readDocument(_ path: String) -> Result<String, BoundedFile.Failure> {
        BoundedFile.readText(path, limit: YAMLLoader.Limits.documentBytes)
    }

    /// Rewrites every scalar of `node`; problems are appended to `issues`.
    public func apply(_ node: inout ConfigNode, path: String, issues: inout [ConfigIssue]) {
        var inserted = 0
        apply(&node, path: path, issues: &issues, inserted: &inserted)
    }

    func apply(_ node: inout ConfigNode, path: String, issues: inout [ConfigIssue], inserted: inout Int) {
        switch node.content {
        case .null:
            return
        case .scalar(var scalar):
            guard scalar.raw.contains("${") else { return }
            var pieces: [String] = []
            if let text = expand(scalar.raw, path: path, line: node.line, issues: &issues, inserted: &inserted, pieces: &pieces) {
                scalar.text = text
                scalar.inserted = pieces
                scalar.interpolated = scalar.raw.contains("${env:") || scalar.raw.contains("${file:")
                node.content = .scalar(scalar)
            } else {
                scalar.unresolved = true
                node.content = .scalar(scalar)
            }
        case .sequence(var items):
            for index in items.indices { apply(&items[index], path: "\(path)[\(index)]", issues: &issues, inserted: &inserted) }
            node.content = .sequence(items)
        case .mapping(var entries):
            for index in entries.indices {
                let key = entries[index].key
                apply(&entries[index].value, path: path.isEmpty ? key : "\(path).\(key)", issues: &issues, inserted: &inserted)
            }
            node.content = .mapping(entries)
        }
    }

    func expand(_ text: String, path: String, line: Int, issues: inout [ConfigIssue]) -> String? {
        var inserted = 0
        var pieces: [String] = []
        return expand(text, path: path, line: line, issues: &issues, inserted: &inserted, pieces: &pieces)
    }

    /// `pieces` receives every value a reference inserted.
    func expand(_ text: String, path: String, line: Int, issues: inout [ConfigIssue], inserted: inout Int, pieces: inout [String])
        -> String?
    {
        var output = ""
        var rest = Substring(text)
        var failed = false
        while let start = rest.range(of: "${") {
            if start.lowerBound > rest.startIndex, rest[rest.index(before: start.lowerBound)] == "$" {
                output += rest[..<rest.index(before: start.lowerBound)]
                output += "${"
                rest = rest[start.upperBound...]
                continue
            }
            output += rest[..<start.lowerBound]
            guard let end = rest[start.upperBound...].firstIndex(of: "}") else {
                issues.append(ConfigIssue(path: path, line: line, message: "'${' is never closed with '}'"))
                return nil
            }
            let reference = String(rest[start.upperBound..<end])
            rest = rest[rest.index(after: end)...]
            if reference.hasPrefix("env:") {
                let body = reference.dropFirst(4)
                var name = String(body)
                var fallback: String?
                if let separator = body.range(of: ":-") {
                    name = String(body[..<separator.lowerBound])
                    fallback = String(body[separator.upperBound...])
                }
                guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
                    issues.append(
                        ConfigIssue(
                            path: path, line: line, message: "bad environment variable name in '${\(ConfigText.escaped(reference))}'"))
                    failed = true
                    continue
                }
                if let value = environment[name], !value.isEmpty {
                    guard insert(value.utf8.count, &inserted, path: path, line: line, issues: &issues) else { return nil }
                    output += value
                    pieces.append(value)
                } else if let fallback {
                    output += fallback
                } else {
                    issues.append(
                        ConfigIssue(
                            path: path, line: line,
                            message:
                                "environment variable \(name) is not set and '${env:\(name)}' has no default (write ${env:\(name):-default})"
                        ))
                    failed = true
                }
            } else if reference.hasPrefix("file:") {
                let file = String(reference.dropFirst(5))
                let content: String
                switch readFile(file) {
                case .success(let text): content = text
                case .failure(let failure):
                    issues.append(ConfigIssue(path: path, line: line, message: "'${file:...}': \(failure)"))
                    failed = true
                    continue
                }
                guard insert(content.utf8.count, &inserted, path: path, line: line, issues: &issues) else { return nil }
                var trimmed = Substring(content)
                while let last = trimmed.last, last == "\n" || last == "\r" || last == "\r\n" { trimmed.removeLast() }
                output += trimmed
                pieces.append(String(trimmed))
            } else {
                issues.append(
                    ConfigIssue(
                        path: path, line: line,
                        message:
                            "unknown reference '${\(ConfigText.escaped(reference))}' (use ${env:NAME}, ${env:NAME:-default} or ${file:PATH})"
                    ))
                failed = true
            }
        }
        output += rest
        return failed ? nil : output
    }

    /// Counts `count` inserted bytes against ``Limits/insertedBytes``; reports once when spent.
    func insert(_ count: Int, _ inserted: inout Int, path: String, line: Int, issues: inout [ConfigIssue]) -> Bool {
        let before = inserted
        inserted += count
        guard inserted > Limits.insertedBytes else { return true }
        if before <= Limits.insertedBytes {
            issues.append(
                ConfigIssue(
                    path: path, line: line,
                    message:
                        "the document's ${env:...} and ${file:...} references insert more than \(BoundedFile.describe(bytes: Limits.insertedBytes)) in all; refused"
                ))
        }
        return false
    }

    /// Reads a whole document as UTF-8, or nil (see ``readDocument(_:)`` for the reason).
    @Sendable public static func readFileContents(_ path: String) -> String? {
        try? readDocument(path).get()
    }
}
