import Foundation
import Testing
#if canImport(Glibc)
    import Glibc
#endif

@Suite(.serialized)
struct ReloadAndReadinessTests {
    func document(output: URL, port: Int, channel: String, level: String = "info") -> String {
        """
        sources:
          - name: ticks
            generate: {rate: 200, channel: "\(channel)"}
        targets:
          - name: archive
            file: {path: "\(output.path)"}
        routes:
          - {from: [ticks], to: [archive]}
        observability: {listen: "127.0.0.1:\(port)", logFormat: json, logLevel: \(level)}
        """
    }

    @Test func hotReloadAppliesAValidDocumentAndKeepsTheOldOneWhenTheNewOneIsInvalid() throws {
        let directory = Paths.temporaryDirectory()
        let output = directory.appendingPathComponent("out.ndjson")
        let port = HTTP.freePort()
        let config = directory.appendingPathComponent("connector.yaml")
        try document(output: output, port: port, channel: "first").write(to: config, atomically: true, encoding: .utf8)
        let process = try SwitchyardProcess(arguments: ["run", "-c", config.path], directory: directory)
        defer { process.signal(SIGKILL) }
        #expect(eventually(timeout: 20) { readNDJSON(output).contains { $0["channel"] as? String == "first" } }, "\(process.log)")

        // An invalid document is rejected; the running one keeps going.
        try (document(output: output, port: port, channel: "first") + "\nunknownField: 1\n").write(
            to: config, atomically: true, encoding: .utf8)
        #expect(
            eventually(timeout: 20) { !process.logEntries(message: "new document rejected; the running document stays in force").isEmpty },
            "\(process.log)")
        let before = readNDJSON(output).count
        #expect(eventually(timeout: 20) { readNDJSON(output).count > before + 50 }, "still running the old document")
        #expect(HTTP.get(port: port, path: "/metrics")?.body.contains(#"switchyard_config_reloads_total{result="rejected"} 1"#) == true)

        // A valid change replaces the changed source; the target keeps running.
        try document(output: output, port: port, channel: "second").write(to: config, atomically: true, encoding: .utf8)
        #expect(eventually(timeout: 20) { readNDJSON(output).contains { $0["channel"] as? String == "second" } }, "\(process.log)")
        let applied = try #require(process.logEntries(message: "new document applied").first)
        #expect(applied["sourcesReplaced"] as? String == "ticks")
        #expect(applied["targetsReplaced"] as? String == "")
        #expect(HTTP.get(port: port, path: "/metrics")?.body.contains("switchyard_config_generation 2") == true)

        process.signal(SIGTERM)
        #expect(process.waitForExit(timeout: 30) == 0)
    }

    /// A reload of a "billion laughs" document (nine levels of nine aliases) is refused with
    /// the line of its first alias; the running pipeline neither grows nor stops.
    @Test func anAliasBombReloadIsRejectedAndTheRunningDocumentStays() throws {
        let directory = Paths.temporaryDirectory()
        let output = directory.appendingPathComponent("out.ndjson")
        let port = HTTP.freePort()
        let config = directory.appendingPathComponent("connector.yaml")
        try document(output: output, port: port, channel: "first").write(to: config, atomically: true, encoding: .utf8)
        let process = try SwitchyardProcess(arguments: ["run", "-c", config.path], directory: directory)
        defer { process.signal(SIGKILL) }
        #expect(eventually(timeout: 20) { !readNDJSON(output).isEmpty }, "\(process.log)")
        var bomb =
            document(output: output, port: port, channel: "bomb")
            + "\ndeployment:\n  resources:\n    a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
        for (level, name) in "bcdefghi".enumerated() {
            let previous = "abcdefghi"[String.Index(utf16Offset: level, in: "abcdefghi")]
            bomb += "    \(name): &\(name) [" + Array(repeating: "*\(previous)", count: 9).joined(separator: ", ") + "]\n"
        }
        try bomb.write(to: config, atomically: true, encoding: .utf8)
        #expect(
            eventually(timeout: 20) { !process.logEntries(message: "new document rejected; the running document stays in force").isEmpty },
            "\(process.log)")
        let rejected = try #require(process.logEntries(message: "new document rejected; the running document stays in force").first)
        #expect(
            (rejected["errors"] as? String)?.contains("line 13): the document holds more than 100000 values through its aliases") == true,
            "\(rejected)")
        let before = readNDJSON(output).count
        #expect(eventually(timeout: 20) { readNDJSON(output).count > before + 50 }, "still running the old document")
        #expect(!readNDJSON(output).contains { $0["channel"] as? String == "bomb" })
        process.signal(SIGTERM)
        #expect(process.waitForExit(timeout: 30) == 0)
    }

    @Test func readinessIsOffWhileATargetIsDownAndTheRouteIsPaused() throws {
        let directory = Paths.temporaryDirectory()
        let port = HTTP.freePort()
        let config = directory.appendingPathComponent("connector.yaml")
        try """
        sources:
          - name: ticks
            generate: {rate: 500}
        targets:
          - name: flaky
            drop: {failEvery: 1, failure: target}
        routes:
          - {from: [ticks], to: [flaky]}
        delivery: {retry: {initialBackoff: 10ms, maxBackoff: 50ms}, drainTimeout: 1s}
        observability: {listen: "127.0.0.1:\(port)", logFormat: json}
        """.write(to: config, atomically: true, encoding: .utf8)
        let process = try SwitchyardProcess(arguments: ["run", "-c", config.path], directory: directory)
        #expect(
            eventually(timeout: 20) {
                guard let answer = HTTP.get(port: port, path: "/readyz") else { return false }
                return answer.status == 503 && answer.body.contains("target flaky paused")
            }, "\(process.log)")
        #expect(HTTP.get(port: port, path: "/livez")?.status == 200)
        let metrics = HTTP.get(port: port, path: "/metrics")?.body ?? ""
        #expect(metrics.contains(#"switchyard_target_paused{target="flaky"} 1"#), "\(metrics)")
        // Logged once per state change, not per attempt.
        #expect(process.logEntries(message: "target paused: its route holds until the target recovers").count == 1)
        process.signal(SIGTERM)
        #expect(process.waitForExit(timeout: 30) == 0, "\(process.log)")
    }
}
