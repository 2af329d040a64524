import SwitchyardCore

/// The object key template: a ``Template`` evaluated with the first message of the object, in
/// which `{{ lastOffset }}` stands for the offset of the object's last message.
///
/// The core template language knows no `lastOffset` (it renders one message), so the text is
/// split at each `{{ lastOffset }}` and the pieces are compiled as ordinary templates.
struct S3KeyTemplate: Sendable {
    /// The text as written.
    let source: String
    /// Templates between the `{{ lastOffset }}` placeholders (one more than there are placeholders).
    let pieces: [Template]
    /// Whether the key can differ between two messages of the same channel and partition for
    /// reasons other than their offsets (it reads the timestamp, key, value, JSON or headers).
    let readsMessageContent: Bool
    /// Whether the key is made from offsets without `{{ session }}` (see ``Message/session``).
    let readsOffsetWithoutSession: Bool

    static let placeholder = "lastOffset"
    static let offsetVariables: Set<String> = ["channel", "partition", "offset", "session", placeholder]

    init(_ text: String) throws(S3KeyTemplateError) {
        source = text
        var pieces: [Template] = []
        var heads: [String] = []
        let characters = Array(text)
        var pieceStart = 0
        var index = 0
        var piecesText: [(text: String, column: Int)] = []
        while index + 1 < characters.count {
            guard characters[index] == "{", characters[index + 1] == "{" else {
                index += 1
                continue
            }
            var close = index + 2
            while close + 1 < characters.count, !(characters[close] == "}" && characters[close + 1] == "}") { close += 1 }
            guard close + 1 < characters.count else { break }
            let inner = String(characters[(index + 2)..<close])
            let head = inner.split(separator: "|", maxSplits: 1, omittingEmptySubsequences: false).first.map { Self.trim($0) } ?? ""
            heads.append(head)
            if Self.trim(Substring(inner)) == Self.placeholder {
                piecesText.append((String(characters[pieceStart..<index]), pieceStart))
                pieceStart = close + 2
            } else if head == Self.placeholder {
                throw S3KeyTemplateError(column: index + 3, message: "'lastOffset' takes no filter")
            }
            index = close + 2
        }
        piecesText.append((String(characters[pieceStart...]), pieceStart))
        for (piece, column) in piecesText {
            do {
                pieces.append(try Template(piece))
            } catch {
                throw S3KeyTemplateError(column: error.column + column, message: error.message)
            }
        }
        self.pieces = pieces
        readsOffsetWithoutSession = (heads.contains("offset") || heads.contains(Self.placeholder)) && !heads.contains("session")
        readsMessageContent = heads.contains { !Self.offsetVariables.contains($0) }
    }

    /// The default key: channel, partition, first and last offsets, and a suffix by format
    /// and compression. With `session` (for messages whose positions restart with each
    /// connection or sender, see ``Message/session``) the session follows the partition, so
    /// that two processes, or one process before and after a restart, never share a key.
    static func defaultSource(format: S3Format, compression: S3Compression, session: Bool = false) -> String {
        let suffix = (format == .ndjson ? ".ndjson" : ".txt") + (compression == .gzip ? ".gz" : "")
        let sessionPart = session ? "{{ session }}/" : ""
        return "{{ channel | default: 'none' }}/{{ partition }}/\(sessionPart){{ offset }}-{{ lastOffset }}\(suffix)"
    }

    /// Renders the key for an object whose first message is `first` and whose last offset is
    /// `lastOffset`.
    func render(first: Message, lastOffset: Int64) -> [UInt8] {
        var output: [UInt8] = []
        let last = Array(String(lastOffset).utf8)
        for (i, piece) in pieces.enumerated() {
            if i > 0 { output.append(contentsOf: last) }
            piece.render(first, into: &output)
        }
        return output
    }

    static func trim(_ text: Substring) -> String {
        var slice = text
        while let first = slice.first, first.isWhitespace { slice.removeFirst() }
        while let last = slice.last, last.isWhitespace { slice.removeLast() }
        return String(slice)
    }
}

/// A key template that failed to compile, located in the whole key text.
struct S3KeyTemplateError: Error, Sendable, CustomStringConvertible {
    var column: Int
    var message: String

    var description: String { "template error at character \(column): \(message)" }
}
