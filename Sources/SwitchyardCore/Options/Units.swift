/// Parsing of the duration and size notations used in documents.
public enum Units {
    /// Parses `250ms`, `1.5s`, `30s`, `5m`, `24h`, `1h30m`, `0`; units `ns`, `us`, `ms`, `s`, `m`, `h`, `d`.
    public static func parseDuration(_ text: String) -> Duration? {
        let text = text.trimmingCharacters(in: " ")
        if text == "0" { return .zero }
        var total: Double = 0
        var rest = Substring(text)
        guard !rest.isEmpty else { return nil }
        while !rest.isEmpty {
            let number = rest.prefix { $0.isNumber || $0 == "." }
            guard !number.isEmpty, let value = Double(number) else { return nil }
            rest = rest.dropFirst(number.count)
            let unit = rest.prefix { $0.isLetter }
            rest = rest.dropFirst(unit.count)
            let scale: Double
            switch unit {
            case "ns": scale = 1e-9
            case "us", "µs": scale = 1e-6
            case "ms": scale = 1e-3
            case "s": scale = 1
            case "m": scale = 60
            case "h": scale = 3600
            case "d": scale = 86400
            default: return nil
            }
            total += value * scale
        }
        guard total.isFinite, total < 1e12 else { return nil }
        return .nanoseconds(Int64((total * 1e9).rounded()))
    }

    /// Parses a byte size: `1048576`, `512KiB`, `64MiB`, `1GiB`, `10KB`, `1MB`, `1GB`, `100B`.
    public static func parseSize(_ text: String) -> Int? {
        let text = text.trimmingCharacters(in: " ")
        let number = text.prefix { $0.isNumber || $0 == "." }
        guard !number.isEmpty, let value = Double(number) else { return nil }
        let unit = String(text.dropFirst(number.count)).trimmingCharacters(in: " ")
        let scale: Double
        switch unit {
        case "", "B": scale = 1
        case "KB", "kB": scale = 1e3
        case "MB": scale = 1e6
        case "GB": scale = 1e9
        case "KiB": scale = 1024
        case "MiB": scale = 1024 * 1024
        case "GiB": scale = 1024 * 1024 * 1024
        default: return nil
        }
        let bytes = value * scale
        guard bytes.isFinite, bytes >= 0, bytes < 9e18, bytes == bytes.rounded() || scale > 1 else { return nil }
        return Int(bytes.rounded())
    }

    /// Formats a byte count the way documents write it (`64MiB`).
    public static func formatSize(_ bytes: Int) -> String {
        let units: [(Int, String)] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")]
        for (scale, name) in units where bytes >= scale && bytes % scale == 0 {
            return "\(bytes / scale)\(name)"
        }
        return "\(bytes)B"
    }
}

extension String {
    func trimmingCharacters(in character: Character) -> String {
        var slice = Substring(self)
        while slice.first == character { slice.removeFirst() }
        while slice.last == character { slice.removeLast() }
        return String(slice)
    }
}
