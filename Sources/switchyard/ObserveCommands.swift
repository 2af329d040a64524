#if canImport(Glibc)
    import Glibc
#endif
import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import SwitchyardCore
import SwitchyardRuntime

/// The observability port of a running process: `http://HOST:PORT`, with or without a path.
func observabilityBase(_ url: String) -> String {
    var base = url.hasPrefix("http://") || url.hasPrefix("https://") ? url : "http://\(url)"
    while base.hasSuffix("/") { base.removeLast() }
    return base
}

struct Tap: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Sample live messages at a source, route or target of a running process (the document must set observability.tap.enabled).",
        discussion: """
            Prints one line per message: the position, the key, the headers and the value, each cut to \
            observability.tap.maxValueBytes. The process never waits for this reader: when it reads too \
            slowly, messages are not sampled, and the count of them is reported on standard error.
            """)

    @Option(help: "The observability address of the process (observability.listen).")
    var url = "http://127.0.0.1:8080"

    @Option(help: "Where to sample: source:NAME, route:NAME or target:NAME.")
    var at: String

    @Option(help: "Stop after this many messages (0: no limit).")
    var limit = 0

    @Option(help: "Stop after this long (e.g. 30s); default: until interrupted.")
    var duration: String?

    @Option(help: "text (one line per message) or json (the NDJSON stream as the process sends it).")
    var format = "text"

    func run() async throws {
        guard TapPoint(parsing: at) != nil else {
            printError("--at: expected source:NAME, route:NAME or target:NAME, got '\(at)'")
            throw ExitCode(2)
        }
        guard format == "text" || format == "json" else {
            printError("--format: expected text or json, got '\(format)'")
            throw ExitCode(2)
        }
        var seconds: Double?
        if let duration {
            guard let parsed = Units.parseDuration(duration), parsed > .zero else {
                printError("--duration: expected a duration such as 30s or 5m, got '\(duration)'")
                throw ExitCode(2)
            }
            seconds = parsed.seconds
        }
        var query = "at=\(percentEncoded(at))&limit=\(max(0, limit))"
        if let seconds { query += "&seconds=\(seconds)" }
        var request = HTTPClientRequest(url: "\(observabilityBase(url))/tap?\(query)")
        request.method = .GET
        let response: HTTPClientResponse
        do {
            response = try await HTTPClient.shared.execute(request, timeout: .hours(24 * 365))
        } catch {
            printError("switchyard tap: cannot reach \(url): \(error)")
            throw ExitCode(1)
        }
        guard response.status == .ok else {
            let body = (try? await response.body.collect(upTo: 64 << 10)).map { String(buffer: $0) } ?? ""
            printError("switchyard tap: \(response.status.code) \(body.trimmingCharacters(in: .whitespacesAndNewlines))")
            throw ExitCode(1)
        }
        var pending: [UInt8] = []
        var ended = false
        for try await chunk in response.body {
            pending += chunk.readableBytesView
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(pending[..<newline])
                pending.removeSubrange(...newline)
                if handle(line) { ended = true }
            }
        }
        if !ended {
            printError("switchyard tap: the process closed the stream without its final counts")
            throw ExitCode(1)
        }
    }

    /// Prints one line of the stream; returns whether it was the last.
    func handle(_ bytes: [UInt8]) -> Bool {
        guard let line = try? JSONDecoder().decode(TapLine.self, from: Data(bytes)) else {
            printError("switchyard tap: unreadable line: \(String(decoding: bytes.prefix(200), as: UTF8.self))")
            return false
        }
        if format == "json" {
            writeStandardOutput(bytes + [UInt8(ascii: "\n")])
        }
        if let sample = line.sample, format == "text" {
            writeStandardOutput(Array((Self.text(sample, at: line.at) + "\n").utf8))
        }
        if let counts = line.counts {
            printError(
                "switchyard tap: \(counts.dropped) of \(counts.seen) messages not sampled so far (this reader is slower than the pipeline)")
        }
        if let end = line.end {
            printError(
                "switchyard tap: ended (\(end.reason ?? "-")): \(end.seen) messages passed \(line.at), \(end.sent) shown, \(end.dropped) not sampled"
            )
            return true
        }
        return false
    }

    static func text(_ sample: TapLine.Sample, at: String) -> String {
        var parts = ["\(at)", "\(sample.channel.isEmpty ? "-" : sample.channel)[\(sample.partition)]@\(sample.offset)"]
        if sample.session != String(repeating: "0", count: 16) { parts.append("session=\(sample.session)") }
        parts.append("key=\(sample.key.map(visible) ?? "-")")
        if !sample.headers.isEmpty {
            parts.append(
                "headers={" + sample.headers.map { "\($0.name)=\($0.value.map(visible) ?? "[redacted]")" }.joined(separator: ", ") + "}")
        }
        var value = "value=\(visible(sample.value))"
        if sample.encoding == "base64" { value += " (base64)" }
        if sample.truncated { value += "… (\(sample.valueBytes) B)" }
        parts.append(value)
        return parts.joined(separator: " ")
    }

    /// Control characters shown escaped, so that one message is one line.
    static func visible(_ text: String) -> String {
        var output = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": output += "\\n"
            case "\r": output += "\\r"
            case "\t": output += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7f {
                    output += "\\x" + String(format: "%02x", scalar.value)
                } else {
                    output.unicodeScalars.append(scalar)
                }
            }
        }
        return output
    }

    func percentEncoded(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~:"))) ?? text
    }
}

func writeStandardOutput(_ bytes: [UInt8]) {
    bytes.withUnsafeBytes { buffer in
        var offset = 0
        while offset < buffer.count {
            let written = write(1, buffer.baseAddress! + offset, buffer.count - offset)
            if written <= 0 { return }
            offset += written
        }
    }
}

struct Top: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Watch running processes: rates, lag, state and errors of every source and target, from their /status.",
        discussion: """
            On a terminal the view refreshes in place until interrupted (Ctrl-C). When standard output \
            is not a terminal, plain snapshots are printed (--count of them, default 1).
            """)

    @Option(name: .customLong("url"), help: "Observability address of a process (repeat for several).")
    var urls: [String] = ["http://127.0.0.1:8080"]

    @Option(help: "Time between refreshes (e.g. 1s).")
    var interval = "1s"

    @Option(help: "Snapshots to show before exiting (0: until interrupted; default: 0 on a terminal, 1 otherwise).")
    var count: Int?

    func run() async throws {
        guard let every = Units.parseDuration(interval), every >= .milliseconds(100) else {
            printError("--interval: expected a duration of at least 100ms, such as 1s, got '\(interval)'")
            throw ExitCode(2)
        }
        let terminal = isatty(1) != 0
        let snapshots = count ?? (terminal ? 0 : 1)
        var shown = 0
        while snapshots == 0 || shown < snapshots {
            if shown > 0 { try await Task.sleep(for: every) }
            var reports: [(url: String, result: Result<StatusReport, any Error>)] = []
            for url in urls {
                reports.append((url, await Self.fetch(url)))
            }
            let width = terminal ? Self.terminalWidth() : 160
            var text = TopView.render(reports, width: width)
            if terminal {
                text = "\u{1B}[H\u{1B}[2J" + "switchyard top · every \(interval) · Ctrl-C to quit\n\n" + text
            } else if shown > 0 {
                text = "\n" + text
            }
            writeStandardOutput(Array(text.utf8))
            shown += 1
        }
    }

    static func fetch(_ url: String) async -> Result<StatusReport, any Error> {
        do {
            let response = try await HTTPClient.shared.execute(
                HTTPClientRequest(url: "\(observabilityBase(url))/status"), timeout: .seconds(5))
            let body = try await response.body.collect(upTo: 16 << 20)
            guard response.status == .ok else {
                return .failure(TopError(message: "HTTP \(response.status.code)"))
            }
            return .success(try StatusReport.decode(Array(buffer: body)))
        } catch {
            return .failure(error)
        }
    }

    static func terminalWidth() -> Int {
        var size = winsize()
        if ioctl(1, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 20 { return Int(size.ws_col) }
        return 120
    }
}

struct TopError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// The text `switchyard top` prints for some processes.
enum TopView {
    static func render(_ reports: [(url: String, result: Result<StatusReport, any Error>)], width: Int) -> String {
        var out = ""
        for (index, entry) in reports.enumerated() {
            if index > 0 { out += "\n" }
            switch entry.result {
            case .failure(let error):
                out += "\(entry.url)  UNREACHABLE  \(error)\n"
            case .success(let report):
                out += render(report, url: entry.url, width: width)
            }
        }
        return out
    }

    static func render(_ report: StatusReport, url: String, width: Int) -> String {
        var out = "\(url)  \(report.name ?? "switchyard")  \(report.ready ? "ready" : "NOT READY")\(report.draining ? " draining" : "")"
        out += "  generation \(report.generation)  up \(duration(report.uptimeSeconds))"
        out += "  memory \(Units.formatSize(report.memory.usedBytes))/\(Units.formatSize(report.memory.limitBytes))"
        out += "  in flight \(report.inflight.messages)\n"
        for reason in report.reasons { out += "  ! \(reason)\n" }
        let header = ["ROLE", "NAME", "KIND", "STATE", "RATE/S", "TOTAL", "LAG", "IN FLIGHT", "OLDEST", "QUEUED", "RETRIED", "DEAD"]
        var rows: [[String]] = [header]
        var errors: [String] = []
        for source in report.sources {
            rows.append([
                "source", source.name, source.kind, source.state, rate(source.ratePerSecond), String(source.messages), String(source.lag),
                String(source.inflight), duration(source.oldestUnackedSeconds), "", "", "",
            ])
            if let reason = source.reason { errors.append("source \(source.name): \(reason)") }
            if let error = source.lastError { errors.append("source \(source.name) (\(duration(error.ageSeconds)) ago): \(error.message)") }
        }
        for target in report.targets {
            rows.append([
                "target", target.name, target.kind, target.state, rate(target.ratePerSecond), String(target.written), "", "", "",
                String(target.queued), String(target.retried), String(target.deadLettered),
            ])
            if let reason = target.reason { errors.append("target \(target.name) \(target.state): \(reason)") }
            if let error = target.lastError { errors.append("target \(target.name) (\(duration(error.ageSeconds)) ago): \(error.message)") }
        }
        let widths = header.indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
        for row in rows {
            var line = ""
            for (column, cell) in row.enumerated() {
                let pad = String(repeating: " ", count: widths[column] - cell.count)
                // Names and states left, numbers right.
                line += (column == 0 ? "" : "  ") + (column >= 4 ? pad + cell : cell + pad)
            }
            while line.hasSuffix(" ") { line.removeLast() }
            out += "  " + clip(line, width - 2) + "\n"
        }
        for error in errors { out += "  " + clip(error, width - 2) + "\n" }
        if report.tap.enabled && !report.tap.attached.isEmpty {
            for tap in report.tap.attached {
                out += "  tap \(tap.at): \(tap.seen) seen, \(tap.sent) sent, \(tap.dropped) dropped\n"
            }
        }
        return out
    }

    static func clip(_ text: String, _ width: Int) -> String {
        text.count <= width ? text : String(text.prefix(max(1, width - 1))) + "…"
    }

    static func rate(_ value: Double?) -> String {
        guard let value else { return "-" }
        return value >= 100 ? String(Int(value.rounded())) : String(format: "%.1f", value)
    }

    static func duration(_ seconds: Double) -> String {
        if seconds < 1 { return seconds <= 0 ? "0s" : "\(Int((seconds * 1000).rounded()))ms" }
        if seconds < 120 { return "\(Int(seconds.rounded()))s" }
        if seconds < 7200 { return "\(Int((seconds / 60).rounded()))m" }
        return String(format: "%.1fh", seconds / 3600)
    }
}
