/// Text from a document, made safe to echo in an error or a log line.
///
/// A name or value may hold newlines, terminal escapes or Unicode direction controls (U+202E
/// and its kin, "Trojan Source"); echoed raw they could forge lines of `switchyard validate`
/// output or reorder what a reader sees. They are shown as escapes instead (`\n`, `\u{202E}`).
public enum ConfigText {
    /// `text` with every control, format (direction, zero-width) and line-separator character
    /// escaped, and shortened to `limit` characters (with `...`). Backslashes stay as they are.
    public static func escaped(_ text: some StringProtocol, limit: Int = 200) -> String {
        var result = ""
        var count = 0
        for scalar in text.unicodeScalars {
            if count >= limit {
                result += "..."
                break
            }
            count += 1
            switch scalar {
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            default:
                if needsEscape(scalar) {
                    result += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
                } else {
                    result.unicodeScalars.append(scalar)
                }
            }
        }
        return result
    }

    /// `'text'`, escaped.
    public static func quoted(_ text: some StringProtocol, limit: Int = 200) -> String {
        "'" + escaped(text, limit: limit) + "'"
    }

    /// Whether `text` would be changed by ``escaped(_:limit:)`` (apart from its length).
    public static func isPlain(_ text: some StringProtocol) -> Bool {
        text.unicodeScalars.allSatisfy { !needsEscape($0) }
    }

    static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .control, .format, .lineSeparator, .paragraphSeparator, .surrogate, .privateUse, .unassigned:
            return true
        default:
            return false
        }
    }
}
