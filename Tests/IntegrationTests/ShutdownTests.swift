import Foundation
import Testing
#if canImport(Glibc)
    import Glibc
#endif

/// Runs the `switchyard` binary as its own process, as a user would.
@Suite(.serialized)
struct ShutdownTests {
    @Test func sigtermMidStreamDrainsEveryAcknowledgedMessageIntoTheFileAndExitsZero() throws {
        let directory = Paths.temporaryDirectory()
        let output = directory.appendingPathComponent("out.ndjson")
        let port = HTTP.freePort()
        let config = directory.appendingPathComponent("connector.yaml")
        try """
        apiVersion: switchyard.dev/v1alpha1
        kind: Connector
        metadata: {name: drain-test}
        spec:
          sources:
            - name: numbers
              generate: {shards: 3, key: "k-{{ offset }}", size: 64, batchSize: 200}
          targets:
            - name: archive
              file: {path: "\(output.path)", delay: 150ms}
          routes:
            - {from: [numbers], to: [archive]}
          batching: {maxMessages: 200}
          delivery: {drainTimeout: 30s}
          observability: {listen: "127.0.0.1:\(port)", logFormat: json}
        """.write(to: config, atomically: true, encoding: .utf8)

        let process = try SwitchyardProcess(arguments: ["run", "-c", config.path], directory: directory)
        #expect(eventually(timeout: 20) { HTTP.get(port: port, path: "/readyz")?.status == 200 }, "never became ready: \(process.log)")
        #expect(eventually(timeout: 20) { readNDJSON(output).count >= 600 })

        process.signal(SIGTERM)
        var sawNotReady = false
        var sawLiveDuringDrain = false
        while process.process.isRunning {
            if let answer = HTTP.get(port: port, path: "/readyz"), answer.status == 503 {
                sawNotReady = true
                if HTTP.get(port: port, path: "/livez")?.status == 200 { sawLiveDuringDrain = true }
            }
            usleep(10_000)
        }
        let status = process.waitForExit(timeout: 40)
        #expect(status == 0, "exit status \(String(describing: status)); log:\n\(process.log)")
        #expect(sawNotReady, "/readyz never answered 503 during the drain")
        #expect(sawLiveDuringDrain)

        let closed = try #require(process.logEntries(message: "generator closed").first, "no 'generator closed' line in:\n\(process.log)")
        let acknowledged = Int(closed["acknowledged"] as? String ?? "") ?? -1
        let through = (closed["acknowledgedThrough"] as? String ?? "").split(separator: ",").reduce(into: [Int: Int]()) { result, pair in
            let parts = pair.split(separator: ":")
            if parts.count == 2, let shard = Int(parts[0]), let offset = Int(parts[1]) { result[shard] = offset }
        }
        #expect(acknowledged > 0)
        #expect(!through.isEmpty)

        let lines = readNDJSON(output)
        var seen: [Int: Set<Int>] = [:]
        for line in lines {
            seen[line["partition"] as? Int ?? -1, default: []].insert(line["offset"] as? Int ?? -1)
        }
        var acknowledgedTotal = 0
        for (shard, last) in through {
            let missing = (0...last).filter { !(seen[shard]?.contains($0) ?? false) }
            #expect(
                missing.isEmpty, "shard \(shard): acknowledged through \(last) but \(missing.count) missing, first \(missing.prefix(5))")
            acknowledgedTotal += last + 1
        }
        #expect(acknowledgedTotal == acknowledged, "the contiguous prefix per shard adds up to the acknowledged count")
        #expect(lines.count >= acknowledged)
    }

    @Test func finiteGeneratorExitsZeroOnceEverythingIsAcknowledged() throws {
        let directory = Paths.temporaryDirectory()
        let output = directory.appendingPathComponent("out.ndjson")
        let config = directory.appendingPathComponent("connector.yaml")
        try """
        sources:
          - name: numbers
            generate: {count: 5000, shards: 2, value: '{"n": {{ offset }}}', headers: {kind: "number"}}
        targets:
          - name: archive
            file: {path: "\(output.path)"}
        routes:
          - {from: [numbers], to: [archive]}
        observability: {listen: "", logFormat: json}
        """.write(to: config, atomically: true, encoding: .utf8)
        let process = try SwitchyardProcess(arguments: ["run", "-c", config.path], directory: directory)
        let status = process.waitForExit(timeout: 60)
        #expect(status == 0, "log:\n\(process.log)")
        let lines = readNDJSON(output)
        #expect(lines.count == 5000)
        let keys = Set(lines.map { "\($0["partition"] as? Int ?? -1)/\($0["offset"] as? Int ?? -1)" })
        #expect(keys.count == 5000, "every message exactly once")
        let headers = lines.first?["headers"] as? [[String]]
        #expect(headers == [["kind", "number"]])
    }

    @Test func permanentFailuresGoToTheDeadLetterTargetWithErrorHeaders() throws {
        let directory = Paths.temporaryDirectory()
        let output = directory.appendingPathComponent("out.ndjson")
        let dead = directory.appendingPathComponent("dead.ndjson")
        let config = directory.appendingPathComponent("connector.yaml")
        try """
        sources:
          - name: numbers
            generate: {count: 1000, size: 10}
        targets:
          - name: archive
            file: {path: "\(output.path)", failEvery: 100}
          - name: dead-letters
            file: {path: "\(dead.path)"}
        routes:
          - {from: [numbers], to: [archive]}
        delivery: {deadLetter: dead-letters}
        observability: {listen: "", logFormat: json}
        """.write(to: config, atomically: true, encoding: .utf8)
        let process = try SwitchyardProcess(arguments: ["run", "-c", config.path], directory: directory)
        #expect(process.waitForExit(timeout: 60) == 0, "log:\n\(process.log)")
        let written = readNDJSON(output)
        let deadLetters = readNDJSON(dead)
        #expect(written.count == 990)
        #expect(deadLetters.count == 10)
        let first = try #require(deadLetters.first)
        let headers = Dictionary((first["headers"] as? [[String]] ?? []).map { ($0[0], $0[1]) }) { a, _ in a }
        #expect(headers["switchyard-source"] == "numbers")
        #expect(headers["switchyard-target"] == "archive")
        #expect(headers["switchyard-error"]?.contains("injected failure") == true)
        #expect(headers["switchyard-offset"] == String(first["offset"] as? Int ?? -1))
        #expect(headers["switchyard-partition"] == "0")
        let all = Set((written + deadLetters).map { $0["offset"] as? Int ?? -1 })
        #expect(all == Set(0..<1000), "nothing dropped: every offset is written or dead-lettered")
    }
}
