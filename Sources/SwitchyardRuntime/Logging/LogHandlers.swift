#if canImport(Glibc)
    import Glibc
#endif
import Logging
import Synchronization

/// The process-wide minimum log level; hot reload changes it.
public final class LogLevelBox: Sendable {
    public static let shared = LogLevelBox()
    let value = Atomic<UInt8>(2)

    static let levels: [Logger.Level] = [.trace, .debug, .info, .notice, .warning, .error, .critical]

    public var level: Logger.Level {
        get { Self.levels[Int(value.load(ordering: .relaxed))] }
        set { value.store(UInt8(Self.levels.firstIndex(of: newValue) ?? 2), ordering: .relaxed) }
    }
}

/// Serialises writes to standard error so lines from different threads never interleave.
let standardErrorLock = Mutex<Void>(())

func writeStandardError(_ bytes: [UInt8]) {
    standardErrorLock.withLock { _ in
        var written = 0
        while written < bytes.count {
            let result = bytes.withUnsafeBytes { write(2, $0.baseAddress! + written, $0.count - written) }
            if result <= 0 { break }
            written += result
        }
    }
}

/// Writes log events to standard error: one JSON object per line (`time`, `level`, `message`,
/// `logger`, metadata as string fields), or human-readable lines for terminals.
public struct SwitchyardLogHandler: LogHandler {
    public enum Format: Sendable {
        case json
        case text
    }

    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level {
        get { LogLevelBox.shared.level }
        set { LogLevelBox.shared.level = newValue }
    }
    let label: String
    let format: Format

    public init(label: String, format: Format) {
        self.label = label
        self.format = format
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        switch format {
        case .json: writeStandardError(jsonLine(event, merged))
        case .text: writeStandardError(textLine(event, merged))
        }
    }

    func jsonLine(_ event: LogEvent, _ merged: Logger.Metadata) -> [UInt8] {
        var line: [UInt8] = []
        line.append(contentsOf: #"{"time":"#.utf8)
        appendJSONString(timestampText(), to: &line)
        line.append(contentsOf: #","level":"#.utf8)
        appendJSONString(event.level.rawValue, to: &line)
        line.append(contentsOf: #","message":"#.utf8)
        appendJSONString(event.message.description, to: &line)
        line.append(contentsOf: #","logger":"#.utf8)
        appendJSONString(label, to: &line)
        for key in merged.keys.sorted() {
            line.append(UInt8(ascii: ","))
            appendJSONString(key, to: &line)
            line.append(UInt8(ascii: ":"))
            appendJSONString("\(merged[key]!)", to: &line)
        }
        line.append(contentsOf: "}\n".utf8)
        return line
    }

    func textLine(_ event: LogEvent, _ merged: Logger.Metadata) -> [UInt8] {
        let fields = merged.keys.sorted().map { "\($0)=\(merged[$0]!)" }.joined(separator: " ")
        return Array(
            "\(timestampText()) \(event.level.rawValue.uppercased().padding(8)) \(event.message)\(fields.isEmpty ? "" : " " + fields)\n"
                .utf8)
    }
}

extension String {
    func padding(_ width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}

func timestampText() -> String {
    var spec = timespec()
    clock_gettime(CLOCK_REALTIME, &spec)
    var seconds = spec.tv_sec
    var parts = tm()
    gmtime_r(&seconds, &parts)
    func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
    let millis = Int(spec.tv_nsec / 1_000_000)
    let millisText = millis < 10 ? "00\(millis)" : millis < 100 ? "0\(millis)" : "\(millis)"
    return
        "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(millisText)Z"
}

func appendJSONString(_ text: String, to output: inout [UInt8]) {
    output.append(UInt8(ascii: "\""))
    for byte in text.utf8 {
        switch byte {
        case UInt8(ascii: "\""): output.append(contentsOf: Array(#"\""#.utf8))
        case UInt8(ascii: "\\"): output.append(contentsOf: Array(#"\\"#.utf8))
        case 0x0A: output.append(contentsOf: Array(#"\n"#.utf8))
        case 0x0D: output.append(contentsOf: Array(#"\r"#.utf8))
        case 0x09: output.append(contentsOf: Array(#"\t"#.utf8))
        case 0..<0x20:
            let hex = Array("0123456789abcdef".utf8)
            output.append(contentsOf: Array(#"\u00"#.utf8))
            output.append(hex[Int(byte >> 4)])
            output.append(hex[Int(byte & 0xF)])
        default: output.append(byte)
        }
    }
    output.append(UInt8(ascii: "\""))
}

/// Bootstraps swift-log once: JSON lines, text, or text on a terminal and JSON otherwise.
public enum LogSetup {
    static let done = Atomic<Bool>(false)

    public static func bootstrap(format: String, level: Logger.Level) {
        LogLevelBox.shared.level = level
        guard !done.exchange(true, ordering: .relaxed) else { return }
        let json = format == "json" || (format == "auto" && isatty(2) == 0)
        LoggingSystem.bootstrap { label in
            SwitchyardLogHandler(label: label, format: json ? .json : .text)
        }
    }

    public static func level(_ name: String) -> Logger.Level {
        Logger.Level(rawValue: name) ?? .info
    }
}
