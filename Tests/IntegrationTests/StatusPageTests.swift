import Foundation
import Testing
#if canImport(Glibc)
    import Glibc
#endif

/// Runs a program to its end; standard output and error are returned.
@discardableResult
func runProgram(_ path: String, _ arguments: [String], timeout: Double = 60) throws -> (status: Int32, output: String, error: String) {
    let directory = Paths.temporaryDirectory()
    let outURL = directory.appendingPathComponent("out")
    let errURL = directory.appendingPathComponent("err")
    _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
    _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    process.standardOutput = try FileHandle(forWritingTo: outURL)
    process.standardError = try FileHandle(forWritingTo: errURL)
    try process.run()
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning && Date() < deadline { usleep(20_000) }
    if process.isRunning {
        kill(process.processIdentifier, SIGKILL)
    }
    process.waitUntilExit()
    let output = (try? String(contentsOf: outURL, encoding: .utf8)) ?? ""
    let error = (try? String(contentsOf: errURL, encoding: .utf8)) ?? ""
    try? FileManager.default.removeItem(at: directory)
    return (process.terminationStatus, output, error)
}

/// Runs a shell command line to its end and returns its standard output. For programs that
/// leave a daemon behind (tmux): Foundation's `Process` counts a child as running while any
/// descendant holds the descriptor it watches, so these go through `system(3)`.
@discardableResult
func shell(_ command: String) -> (status: Int32, output: String) {
    let directory = Paths.temporaryDirectory()
    let out = directory.appendingPathComponent("out").path
    let status = system("\(command) > '\(out)' 2>&1 < /dev/null")
    let output = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
    try? FileManager.default.removeItem(at: directory)
    return (status, output)
}

/// Where tests leave files for a person to look at (screenshots): `.state/artifacts/`.
enum Artifacts {
    static var directory: URL {
        let url = Paths.repository.appendingPathComponent(".state/artifacts")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

/// A running process with three pipelines: one flowing, one whose target is paused (every
/// write fails as "target down"), one whose target cannot open a path that holds a secret read
/// by `${file:...}`. Shared by the status page, `/status` and `switchyard top` tests.
struct ObservedProcess {
    static let secret = "page-secret-7f3a9c51"
    let directory: URL
    let port: Int
    let process: SwitchyardProcess

    init() throws {
        directory = Paths.temporaryDirectory()
        port = HTTP.freePort()
        let password = directory.appendingPathComponent("password")
        try Self.secret.write(to: password, atomically: true, encoding: .utf8)
        let config = directory.appendingPathComponent("connector.yaml")
        try """
        apiVersion: switchyard.dev/v1alpha1
        kind: Connector
        metadata: {name: orders-pipeline}
        spec:
          sources:
            - name: orders
              generate: {rate: 200, size: 64, headers: {authorization: "Bearer ${file:\(password.path)}"}}
            - name: audit
              generate: {rate: 20, size: 32}
            - name: archive-feed
              generate: {rate: 5, size: 16}
          targets:
            - name: warehouse
              drop: {}
            - name: audit-log
              drop: {failEvery: 1, failure: target}
            - name: archive
              file: {path: "/nonexistent-${file:\(password.path)}/archive.ndjson"}
          routes:
            - {name: orders-to-warehouse, from: [orders], to: [warehouse]}
            - {name: audit-trail, from: [audit], to: [audit-log]}
            - {name: archiving, from: [archive-feed], to: [archive]}
          delivery: {retry: {initialBackoff: 50ms, maxBackoff: 500ms}}
          observability: {listen: "127.0.0.1:\(port)", logFormat: json}
        """.write(to: config, atomically: true, encoding: .utf8)
        process = try SwitchyardProcess(arguments: ["run", "-c", config.path], directory: directory)
    }

    func status() -> [String: Any]? {
        guard let answer = HTTP.get(port: port, path: "/status"), answer.status == 200 else { return nil }
        return try? JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [String: Any]
    }

    func entry(_ role: String, _ name: String, in status: [String: Any]?) -> [String: Any]? {
        (status?[role] as? [[String: Any]])?.first { $0["name"] as? String == name }
    }

    /// Waits until every pipeline shows what it should: a rate, a pause, an error.
    func settled() -> Bool {
        eventually(timeout: 30) {
            let status = status()
            let warehouse = entry("targets", "warehouse", in: status)
            return (warehouse?["ratePerSecond"] as? Double ?? 0) > 0
                && entry("targets", "audit-log", in: status)?["state"] as? String == "paused"
                && entry("targets", "archive", in: status)?["lastError"] != nil
        }
    }
}

@Suite(.serialized)
struct StatusPageTests {
    /// `/status`: counts, states and errors; no secret anywhere.
    @Test func statusReportsEveryConnectorAndNoSecret() throws {
        let observed = try ObservedProcess()
        defer { observed.process.signal(SIGKILL) }
        #expect(observed.settled(), "\(observed.process.log)")
        let body = try #require(HTTP.get(port: observed.port, path: "/status")).body
        let status = try #require(observed.status())
        #expect(status["name"] as? String == "orders-pipeline")
        #expect(status["ready"] as? Bool == false)
        #expect((status["reasons"] as? [String])?.contains { $0.contains("audit-log paused") } == true)
        let orders = try #require(observed.entry("sources", "orders", in: status))
        #expect(orders["state"] as? String == "running")
        #expect((orders["messages"] as? Int ?? 0) > 0)
        #expect((orders["ratePerSecond"] as? Double ?? 0) > 50)
        let audit = try #require(observed.entry("sources", "audit", in: status))
        #expect((audit["lag"] as? Int ?? 0) > 0, "the paused target holds the audit messages")
        let paused = try #require(observed.entry("targets", "audit-log", in: status))
        #expect((paused["reason"] as? String)?.contains("injected failure") == true)
        #expect((paused["retried"] as? Int ?? 0) > 0)
        let archive = try #require(observed.entry("targets", "archive", in: status))
        #expect(archive["state"] as? String == "connecting")
        let error = try #require((archive["lastError"] as? [String: Any])?["message"] as? String)
        #expect(error.contains("cannot open [redacted]: No such file"), "\(error)")
        #expect((status["routes"] as? [[String: Any]])?.count == 3)
        #expect(!body.contains(ObservedProcess.secret))
        #expect(!body.contains("Bearer"))
        // The same errors are in the log, as before: the scrubbing is the page's, not the log's.
        #expect(HTTP.get(port: observed.port, path: "/")?.body.contains(ObservedProcess.secret) == false)
        observed.process.signal(SIGTERM)
        #expect(observed.process.waitForExit(timeout: 30) != nil)
    }

    /// The page as a person sees it: Debian's Chromium, headless, renders it from the running
    /// process; the rendered DOM shows sources, targets, a rate above zero and the paused
    /// target as paused, and holds no secret. The screenshot is left in .state/artifacts/.
    @Test func statusPageRendersInChromium() throws {
        let chromium = try #require(
            ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) },
            "chromium is not installed (scripts/setup installs it)")
        let observed = try ObservedProcess()
        defer { observed.process.signal(SIGKILL) }
        #expect(observed.settled(), "\(observed.process.log)")
        let profile = Paths.temporaryDirectory()
        let flags = [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--user-data-dir=\(profile.path)",
        ]
        let url = "http://127.0.0.1:\(observed.port)/"
        let dump = try runProgram(chromium, flags + ["--dump-dom", url], timeout: 90)
        #expect(dump.status == 0, "\(dump.error)")
        let dom = dump.output
        for name in ["orders", "audit", "archive-feed"] {
            #expect(dom.contains("data-source=\"\(name)\""), "source \(name) missing")
            #expect(dom.contains("data-role=\"source\" data-name=\"\(name)\""), "source \(name) not drawn")
        }
        for name in ["warehouse", "audit-log", "archive"] {
            #expect(dom.contains("data-target=\"\(name)\""), "target \(name) missing")
        }
        #expect(dom.contains("data-role=\"route\" data-name=\"orders-to-warehouse\""))
        #expect(dom.contains("<svg id=\"pipeline\""))
        let warehouseRate = Self.attribute("data-rate", ofRowWith: "data-target=\"warehouse\"", in: dom).flatMap(Double.init)
        #expect((warehouseRate ?? 0) > 0, "rate of warehouse: \(String(describing: warehouseRate))")
        #expect(Self.attribute("data-state", ofRowWith: "data-target=\"audit-log\"", in: dom) == "paused")
        #expect(dom.contains("id=\"readiness\" class=\"badge bad\" data-ready=\"false\""))
        #expect(dom.contains("[redacted]"))
        #expect(!dom.contains(ObservedProcess.secret))

        let screenshot = Artifacts.directory.appendingPathComponent("status-page.png")
        try? FileManager.default.removeItem(at: screenshot)
        let shot = try runProgram(
            chromium, flags + ["--screenshot=\(screenshot.path)", "--window-size=1280,900", "--hide-scrollbars", url], timeout: 90)
        #expect(shot.status == 0, "\(shot.error)")
        let png = try Data(contentsOf: screenshot)
        #expect(png.prefix(8) == Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]))
        #expect(png.count > 20_000, "a blank page would be far smaller: \(png.count) bytes")
        try? FileManager.default.removeItem(at: profile)
        observed.process.signal(SIGTERM)
        #expect(observed.process.waitForExit(timeout: 30) != nil)
    }

    /// The value of `name` in the start tag that contains `marker`.
    static func attribute(_ name: String, ofRowWith marker: String, in html: String) -> String? {
        guard let range = html.range(of: marker) else { return nil }
        let start = html[..<range.lowerBound].lastIndex(of: "<") ?? range.lowerBound
        guard let end = html[range.upperBound...].firstIndex(of: ">") else { return nil }
        let tag = html[start..<end]
        guard let attribute = tag.range(of: "\(name)=\"") else { return nil }
        let rest = tag[attribute.upperBound...]
        return rest.firstIndex(of: "\"").map { String(rest[..<$0]) }
    }

    /// `switchyard top` in a terminal (tmux): a table of every source and target that refreshes
    /// in place; and plain snapshots when standard output is not a terminal.
    @Test func topShowsRatesAndStateInATerminal() throws {
        let tmux = "/usr/bin/tmux"
        try #require(FileManager.default.isExecutableFile(atPath: tmux), "tmux is not installed (scripts/setup installs it)")
        let observed = try ObservedProcess()
        defer { observed.process.signal(SIGKILL) }
        #expect(observed.settled(), "\(observed.process.log)")
        let session = "switchyard-top-\(getpid())-\(observed.port)"
        let socket = Paths.temporaryDirectory().appendingPathComponent("tmux.sock").path
        let command = "\(Paths.binary) top --url http://127.0.0.1:\(observed.port) --interval 500ms"
        let started = shell("\(tmux) -S '\(socket)' new-session -d -s \(session) -x 160 -y 40 '\(command)'")
        #expect(started.status == 0, "\(started.output)")
        defer { shell("\(tmux) -S '\(socket)' kill-server") }
        func capture() -> String { shell("\(tmux) -S '\(socket)' capture-pane -p -t \(session)").output }
        var first = ""
        #expect(
            eventually(timeout: 20) {
                first = capture()
                return first.contains("warehouse") && first.contains("audit-log")
            }, "pane: \(first)")
        #expect(first.contains("switchyard top"))
        #expect(first.contains("orders-pipeline"))
        #expect(first.contains("NOT READY"))
        let lines = first.split(separator: "\n").map(String.init)
        let header = try #require(lines.first { $0.contains("ROLE") && $0.contains("RATE/S") })
        #expect(header.contains("LAG"))
        let warehouse = try #require(lines.first { $0.contains("target") && $0.contains("warehouse") })
        let columns = warehouse.split(separator: " ").map(String.init)
        #expect(columns.count >= 6 && columns[3] == "running", "\(warehouse)")
        #expect((Double(columns.count >= 5 ? columns[4] : "") ?? 0) > 0, "rate: \(warehouse)")
        #expect(lines.contains { $0.contains("audit-log") && $0.contains("paused") })
        #expect(!first.contains(ObservedProcess.secret))
        // It refreshes in place: the uptime moves, the screen is redrawn rather than scrolled.
        let uptime = Self.uptime(first)
        var later = ""
        #expect(
            eventually(timeout: 20) {
                later = capture()
                return Self.uptime(later) != nil && Self.uptime(later) != uptime
            }, "before: \(first)\nafter: \(later)")
        #expect(later.components(separatedBy: "switchyard top").count == 2, "one view on the screen")

        // Not a terminal: one plain snapshot, no escape sequences.
        let plain = try runProgram(Paths.binary, ["top", "--url", "127.0.0.1:\(observed.port)"], timeout: 30)
        #expect(plain.status == 0, "\(plain.error)")
        #expect(plain.output.contains("warehouse") && plain.output.contains("ROLE"))
        #expect(!plain.output.contains("\u{1B}"))
        #expect(plain.output.components(separatedBy: "ROLE").count == 2)
        let two = try runProgram(
            Paths.binary, ["top", "--url", "127.0.0.1:\(observed.port)", "--count", "2", "--interval", "200ms"], timeout: 30)
        #expect(two.output.components(separatedBy: "ROLE").count == 3)
        let unreachable = try runProgram(Paths.binary, ["top", "--url", "127.0.0.1:\(HTTP.freePort())"], timeout: 30)
        #expect(unreachable.output.contains("UNREACHABLE"))
        observed.process.signal(SIGTERM)
        #expect(observed.process.waitForExit(timeout: 30) != nil)
    }

    static func uptime(_ screen: String) -> String? {
        guard let range = screen.range(of: " up ") else { return nil }
        return screen[range.upperBound...].split(separator: " ").first.map(String.init)
    }
}
