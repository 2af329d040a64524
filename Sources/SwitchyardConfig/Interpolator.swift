#if canImport(Glibc)
import Glibc
#endif
import SwitchyardCore

/// Replaces `${env:NAME}`, `${env:NAME:-default}` and `${file:PATH}` inside string values,
/// after the YAML was parsed (so a `${...}` in a comment is never read). `$${` writes a
/// literal `${`. Interpolated scalars are marked so that errors never echo their content.
public struct Interpolator: Sendable {
    public var environment: [String: String]
    public var readFile: @Sendable (String) -> String?

    public init(environment: [String: String], readFile: @escaping @Sendable (String) -> String? = Interpolator.readFileContents) {
        self.environment = environment
        self.readFile = readFile
    }

    /// Rewrites every scalar of `node`; problems are appended to `issues`.
    public func apply(_ node: inout ConfigNode, path: String, issues: inout [ConfigIssue]) {
        switch node.content {
        case .null:
            return
        case .scalar(var scalar):
            guard scalar.raw.contains("${") else { return }
            if let text = expand(scalar.raw, path: path, line: node.line, issues: &issues) {
                scalar.text = text
                scalar.interpolated = scalar.raw.contains("${env:") || scalar.raw.contains("${file:")
                node.content = .scalar(scalar)
            } else {
                scalar.unresolved = true
                node.content = .scalar(scalar)
            }
        case .sequence(var items):
            for index in items.indices { apply(&items[index], path: "\(path)[\(index)]", issues: &issues) }
            node.content = .sequence(items)
        case .mapping(var entries):
            for index in entries.indices {
                let key = entries[index].key
                apply(&entries[index].value, path: path.isEmpty ? key : "\(path).\(key)", issues: &issues)
            }
            node.content = .mapping(entries)
        }
    }

    func expand(_ text: String, path: String, line: Int, issues: inout [ConfigIssue]) -> String? {
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
                    issues.append(ConfigIssue(path: path, line: line, message: "bad environment variable name in '${\(reference)}'"))
                    failed = true
                    continue
                }
                if let value = environment[name], !value.isEmpty {
                    output += value
                } else if let fallback {
                    output += fallback
                } else {
                    issues.append(ConfigIssue(path: path, line: line, message: "environment variable \(name) is not set and '${env:\(name)}' has no default (write ${env:\(name):-default})"))
                    failed = true
                }
            } else if reference.hasPrefix("file:") {
                let file = String(reference.dropFirst(5))
                guard let content = readFile(file) else {
                    issues.append(ConfigIssue(path: path, line: line, message: "cannot read file \(file) named by '${file:...}'"))
                    failed = true
                    continue
                }
                var trimmed = Substring(content)
                while let last = trimmed.last, last == "\n" || last == "\r" || last == "\r\n" { trimmed.removeLast() }
                output += trimmed
            } else {
                issues.append(ConfigIssue(path: path, line: line, message: "unknown reference '${\(reference)}' (use ${env:NAME}, ${env:NAME:-default} or ${file:PATH})"))
                failed = true
            }
        }
        output += rest
        return failed ? nil : output
    }

    /// Reads a whole file as UTF-8, or nil.
    @Sendable public static func readFileContents(_ path: String) -> String? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = fread(&buffer, 1, buffer.count, file)
            if count > 0 { bytes.append(contentsOf: buffer[0..<count]) }
            if count < buffer.count { break }
        }
        if ferror(file) != 0 { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }
}
