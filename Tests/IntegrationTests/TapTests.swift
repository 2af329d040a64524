import Foundation
import Testing
#if canImport(Glibc)
    import Glibc
#endif

@Suite(.serialized)
struct TapTests {
    func document(port: Int, burst: Int?, tap: String = "{enabled: true, buffer: 100, redactHeaders: [Authorization]}") -> String {
        var text = """
            sources:
              - name: slow
                generate: {rate: 2}

            """
        if let burst {
            text += """
                  - name: burst
                    generate: {count: \(burst), batchSize: 100, value: "burst-{{ offset }}", key: "k{{ offset }}", headers: {authorization: "Bearer xyz", trace: "t{{ offset }}"}}

                """
        }
        text += """
            targets:
              - name: idle-sink
                drop: {}
              - name: out
                drop: {}
            routes:
              - {name: slow-route, from: [slow], to: [idle-sink]}

            """
        if burst != nil { text += "  - {name: burst-route, from: [burst], to: [out]}\n" }
        text += """
            delivery: {deadLetter: out}
            observability: {listen: "127.0.0.1:\(port)", logFormat: json, tap: \(tap)}

            """
        return text
    }

    /// A reader slower than the pipeline: `switchyard tap` writes into a pipe nobody reads while
    /// 5,000 messages pass the tapped target, so the process must drop samples. Every message
    /// is accounted for exactly: the lines the reader gets plus the drops reported on the last
    /// line equal the messages that passed, and the pipeline itself never waited (all 5,000
    /// written, the source finished).
    @Test func aSlowReaderMakesTheTapDropAndTheCountIsExact() throws {
        let directory = Paths.temporaryDirectory()
        let port = HTTP.freePort()
        let config = directory.appendingPathComponent("connector.yaml")
        try document(port: port, burst: nil).write(to: config, atomically: true, encoding: .utf8)
        let process = try SwitchyardProcess(arguments: ["run", "-c", config.path], directory: directory)
        defer { process.signal(SIGKILL) }
        #expect(eventually(timeout: 20) { HTTP.get(port: port, path: "/readyz")?.status == 200 }, "\(process.log)")

        // The reader: stdout is a pipe the test does not read until the burst is through.
        let reader = Process()
        reader.executableURL = URL(fileURLWithPath: Paths.binary)
        reader.arguments = ["tap", "--url", "http://127.0.0.1:\(port)", "--at", "target:out", "--format", "json", "--duration", "12s"]
        let output = Pipe()
        let errors = directory.appendingPathComponent("tap.err")
        _ = FileManager.default.createFile(atPath: errors.path, contents: nil)
        reader.standardOutput = output
        reader.standardError = try FileHandle(forWritingTo: errors)
        try reader.run()
        defer { if reader.isRunning { kill(reader.processIdentifier, SIGKILL) } }
        #expect(eventually(timeout: 20) { Self.attached(port: port) == 1 }, "tap not attached")

        // The burst arrives by hot reload, so every one of its messages passes the tap.
        try document(port: port, burst: 5000).write(to: config, atomically: true, encoding: .utf8)
        #expect(
            eventually(timeout: 30) {
                let status = Self.status(port: port)
                let out = (status?["targets"] as? [[String: Any]])?.first { $0["name"] as? String == "out" }
                return out?["written"] as? Int == 5000
            }, "\(process.log)")
        let data = output.fileHandleForReading.readDataToEndOfFile()
        reader.waitUntilExit()
        #expect(reader.terminationStatus == 0, "\((try? String(contentsOf: errors, encoding: .utf8)) ?? "")")

        let lines = data.split(separator: UInt8(ascii: "\n")).compactMap {
            try? JSONSerialization.jsonObject(with: Data($0)) as? [String: Any]
        }
        let samples = lines.compactMap { $0["sample"] as? [String: Any] }
        let end = try #require(lines.last?["end"] as? [String: Any], "no final counts: \(lines.suffix(2))")
        let seen = try #require(end["seen"] as? Int)
        let sent = try #require(end["sent"] as? Int)
        let dropped = try #require(end["dropped"] as? Int)
        #expect(seen == 5000)
        #expect(sent == samples.count)
        #expect(sent + dropped == seen)
        #expect(dropped > 0, "the reader was not slower than the pipeline: \(sent) sent")
        #expect(sent >= 100, "at least the tap's buffer reaches the reader: \(sent)")
        #expect(end["reason"] as? String == "duration")
        let offsets = samples.compactMap { $0["offset"] as? Int }
        #expect(Set(offsets).count == offsets.count && offsets.allSatisfy { (0..<5000).contains($0) })
        #expect(offsets == offsets.sorted(), "samples keep the order of the messages")
        let first = try #require(samples.first)
        #expect(first["value"] as? String == "burst-\(offsets[0])")
        #expect(first["key"] as? String == "k\(offsets[0])")
        let headers = try #require(first["headers"] as? [[String: Any]])
        #expect(headers.contains { $0["name"] as? String == "authorization" && $0["value"] == nil }, "redacted: \(headers)")
        #expect(headers.contains { $0["name"] as? String == "trace" && $0["value"] as? String == "t\(offsets[0])" })
        // Reported on the way too, to the reader's standard error.
        let stderrText = (try? String(contentsOf: errors, encoding: .utf8)) ?? ""
        #expect(stderrText.contains("ended (duration): 5000 messages passed target:out"), "\(stderrText)")
        #expect(Self.attached(port: port) == 0, "detached when the stream ended")

        process.signal(SIGTERM)
        #expect(process.waitForExit(timeout: 30) == 0, "\(process.log)")
    }

    /// Text lines at a route, the limit, and the refusals: tap off, unknown point, bad query.
    @Test func tapTextOutputLimitAndRefusals() throws {
        let directory = Paths.temporaryDirectory()
        let port = HTTP.freePort()
        let config = directory.appendingPathComponent("connector.yaml")
        try document(port: port, burst: nil, tap: "{enabled: true, maxValueBytes: 8}").write(to: config, atomically: true, encoding: .utf8)
        let process = try SwitchyardProcess(arguments: ["run", "-c", config.path], directory: directory)
        defer { process.signal(SIGKILL) }
        #expect(eventually(timeout: 20) { HTTP.get(port: port, path: "/readyz")?.status == 200 }, "\(process.log)")

        let text = try runProgram(
            Paths.binary, ["tap", "--url", "127.0.0.1:\(port)", "--at", "route:slow-route", "--limit", "2"], timeout: 30)
        #expect(text.status == 0, "\(text.error)")
        let lines = text.output.split(separator: "\n")
        #expect(lines.count == 2, "\(text.output)")
        #expect(
            lines.allSatisfy { $0.hasPrefix("route:slow-route generate[0]@") && $0.contains("value=switchya… (100 B)") }, "\(text.output)")
        #expect(text.error.contains("ended (limit)"))

        let unknown = try runProgram(Paths.binary, ["tap", "--url", "127.0.0.1:\(port)", "--at", "target:nowhere"], timeout: 30)
        #expect(unknown.status != 0)
        #expect(unknown.error.contains("404") && unknown.error.contains("no target is named 'nowhere'"), "\(unknown.error)")
        #expect(HTTP.get(port: port, path: "/tap")?.status == 400)
        #expect(HTTP.get(port: port, path: "/tap?at=source:slow&limit=x")?.status == 400)

        // Off: the same request is refused, and says how to turn it on.
        try document(port: port, burst: nil, tap: "{enabled: false}").write(to: config, atomically: true, encoding: .utf8)
        #expect(
            eventually(timeout: 20) { Self.status(port: port)?["tap"].flatMap { ($0 as? [String: Any])?["enabled"] as? Bool } == false })
        let off = try runProgram(Paths.binary, ["tap", "--url", "127.0.0.1:\(port)", "--at", "source:slow", "--limit", "1"], timeout: 30)
        #expect(off.status != 0)
        #expect(off.error.contains("403") && off.error.contains("observability.tap.enabled"), "\(off.error)")
        process.signal(SIGTERM)
        #expect(process.waitForExit(timeout: 30) == 0, "\(process.log)")
    }

    static func status(port: Int) -> [String: Any]? {
        guard let answer = HTTP.get(port: port, path: "/status"), answer.status == 200 else { return nil }
        return try? JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [String: Any]
    }

    static func attached(port: Int) -> Int? {
        ((status(port: port)?["tap"] as? [String: Any])?["attached"] as? [Any])?.count
    }
}
