import Foundation
import Testing

/// The `switchyard` binary killed with SIGKILL mid-stream, then started again: every message
/// arrives at least once; the test reports how many arrived twice.
@Suite("Kafka crash", .serialized)
struct KafkaCrashTests {
    @Test func killedMidStreamAndRestartedLosesNothing() async throws {
        let binary = TestBed.root.appendingPathComponent(".build/debug/switchyard").path
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            Issue.record("\(binary) is missing: run `swift build` first")
            return
        }
        let cluster = try MockCluster(topics: ["crash": 4])
        defer { cluster.stop() }
        let count = 20_000
        let input = (0..<count).map { "k\($0 % 101):v\($0)" }.joined(separator: "\n") + "\n"
        try run(["kcat", "-P", "-b", cluster.brokers, "-t", "crash", "-K:"], input: input)

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-kafka-crash-\(getpid())")
        try? FileManager.default.removeItem(at: directory)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let output = directory.appendingPathComponent("out.ndjson").path
        let config = directory.appendingPathComponent("crash.yaml")
        let log = directory.appendingPathComponent("runtime.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let port = Int.random(in: 20_000...29_000)
        try """
            apiVersion: switchyard.dev/v1alpha1
            kind: Connector
            metadata: {name: kafka-crash}
            spec:
              sources:
                - name: in
                  kafka:
                    brokers: ["\(cluster.brokers)"]
                    topics: [crash]
                    group: crash
                    commitInterval: 200ms
                    batchSize: 200
                    options: {session.timeout.ms: "3000", heartbeat.interval.ms: "500"}
              targets:
                - name: out
                  file: {path: "\(output)", fsync: false, delay: 20ms}
                  batching: {maxMessages: 100, maxBytes: 1MiB, maxDelay: 5ms}
              routes:
                - from: [in]
                  to: [out]
              delivery: {memoryLimit: 4MiB, drainTimeout: 5s}
              observability: {listen: "127.0.0.1:\(port)", logLevel: warning}
            """.write(to: config, atomically: true, encoding: .utf8)

        func start() throws -> Process {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = ["run", "-c", config.path]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle(forWritingAtPath: log.path)
            try process.run()
            return process
        }
        func values() -> [String] {
            guard let text = try? String(contentsOfFile: output, encoding: .utf8) else { return [] }
            return text.split(separator: "\n").compactMap { line in
                guard let range = line.range(of: "\"value\":\"") else { return nil }
                let rest = line[range.upperBound...]
                return rest.firstIndex(of: "\"").map { String(rest[..<$0]) }
            }
        }

        let first = try start()
        await eventually("the first run is mid-stream", within: .seconds(60)) { values().count >= 4000 }
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        let atKill = values().count
        #expect(atKill < count, "the kill came mid-stream")

        let second = try start()
        await eventually("every message arrived after the restart", within: .seconds(90)) { Set(values()).count >= count }
        second.terminate()
        second.waitUntilExit()
        #expect(second.terminationStatus == 0, "exit status; log: \(String((try? String(contentsOf: log, encoding: .utf8))?.suffix(2000) ?? ""))")

        let all = values()
        let distinct = Set(all)
        let missing = Set((0..<count).map { "v\($0)" }).subtracting(distinct)
        #expect(missing.isEmpty, "\(missing.count) messages lost, e.g. \(missing.sorted().prefix(10))")
        #expect(distinct.count == count, "only the produced values arrived")
        print("crash: killed after \(atKill) lines; \(all.count) lines for \(count) messages, \(all.count - distinct.count) duplicated")
    }
}
