/// SQL identifiers and type names, checked and quoted so that nothing from a document is
/// spliced into SQL text unquoted.
enum PostgresIdentifier {
    /// `"name"`, with embedded quotes doubled. Names are used exactly as written (case-sensitive).
    static func quote(_ name: String) -> String {
        var quoted = "\""
        for character in name {
            if character == "\"" { quoted.append("\"") }
            quoted.append(character)
        }
        return quoted + "\""
    }

    /// Splits `schema.table` (either part may be double-quoted) into its parts; nil when malformed.
    static func parseQualified(_ text: String) -> [String]? {
        var parts: [String] = []
        var current = ""
        var quoted = false
        var wasQuoted = false
        var characters = Array(text)[...]
        while let character = characters.popFirst() {
            if quoted {
                if character == "\"" {
                    if characters.first == "\"" {
                        current.append("\"")
                        characters.removeFirst()
                    } else {
                        quoted = false
                    }
                } else {
                    current.append(character)
                }
            } else if character == "\"" {
                guard current.isEmpty, !wasQuoted else { return nil }
                quoted = true
                wasQuoted = true
            } else if character == "." {
                guard !current.isEmpty else { return nil }
                parts.append(current)
                current = ""
                wasQuoted = false
            } else {
                guard !wasQuoted, !character.isWhitespace, character != "\0" else { return nil }
                current.append(character)
            }
        }
        guard !quoted, !current.isEmpty else { return nil }
        parts.append(current)
        return parts.count <= 2 ? parts : nil
    }

    static func quoteQualified(_ parts: [String]) -> String {
        parts.map(quote).joined(separator: ".")
    }

    /// Whether `text` is a plain type name such as `jsonb`, `numeric(12, 2)`, `timestamp with
    /// time zone`, `text[]` or `public.my_enum`: it is written into the SQL as a cast, so only
    /// these characters pass.
    static func isTypeName(_ text: String) -> Bool {
        guard let first = text.first, first.isLetter || first == "_" else { return false }
        var depth = 0
        for character in text {
            switch character {
            case "(": depth += 1; if depth > 1 { return false }
            case ")": depth -= 1; if depth < 0 { return false }
            case "[", "]", ",", ".", " ", "_": continue
            default:
                guard character.isASCII, character.isLetter || character.isNumber else { return false }
            }
        }
        return depth == 0
    }
}
