import Foundation
import Testing

/// The repository, found from this file's path.
let repositoryRoot: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// `SWITCHYARD_BIN`; else the `switchyard` built next to the running test executable (so
/// `swift test --scratch-path DIR` runs DIR's binary); else the debug build in `.build`.
let switchyardBinary: String = {
    if let path = ProcessInfo.processInfo.environment["SWITCHYARD_BIN"] { return path }
    if let executable = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
        let sibling = URL(fileURLWithPath: executable).deletingLastPathComponent().appendingPathComponent("switchyard").path
        if FileManager.default.isExecutableFile(atPath: sibling) { return sibling }
    }
    return repositoryRoot.appendingPathComponent(".build/debug/switchyard").path
}()

struct LinkTestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A scratch folder for one test, removed at the end.
final class Scratch {
    let url: URL

    init(_ name: String) throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent(
            "switchyard-link-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    func write(_ name: String, _ text: String) throws -> String {
        let path = self.path(name)
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    deinit { try? FileManager.default.removeItem(at: url) }
}

/// Loopback ports for one test: consecutive from a random base below Linux's ephemeral range
/// (32768 and up, where outgoing connections of other processes take their ports), so
/// concurrent test runs rarely collide.
func freePorts(_ count: Int) -> [Int] {
    let base = Int.random(in: 30_000...(32_700 - count))
    return (0..<count).map { base + $0 }
}

/// A `switchyard run` process on a document, its standard error in a log file. Killed (SIGKILL)
/// when dropped.
final class RuntimeProcess {
    let process = Process()
    let log: String
    let name: String

    init(_ name: String, config: String, scratch: Scratch, attempt: Int = 0) throws {
        guard FileManager.default.isExecutableFile(atPath: switchyardBinary) else {
            throw LinkTestFailure("\(switchyardBinary) is missing: run `swift build` first")
        }
        self.name = name
        log = scratch.path("\(name)-\(attempt).log")
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        process.executableURL = URL(fileURLWithPath: switchyardBinary)
        process.arguments = ["run", "-c", config]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle(forWritingAtPath: log)
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    deinit { kill9() }

    func kill9() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    var logText: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

    /// The exit status, or nil when the process has not exited within `limit` (or Foundation
    /// missed the exit: then the caller judges by the output).
    func exitStatus(within limit: Duration) async -> Int32? {
        let deadline = ContinuousClock.now + limit
        while process.isRunning {
            if ContinuousClock.now >= deadline { return nil }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return process.terminationStatus
    }
}

/// Runs a command to completion off the cooperative pool; returns its status and output.
func command(_ arguments: [String], in directory: String? = nil) async throws -> (status: Int32, output: String) {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            do {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                process.arguments = arguments
                if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
                let output = Pipe()
                process.standardOutput = output
                process.standardError = output
                process.standardInput = FileHandle.nullDevice
                try process.run()
                let data = output.fileHandleForReading.readDataToEndOfFile()
                let deadline = Date().addingTimeInterval(30)
                while process.isRunning && Date() < deadline { usleep(2_000) }
                let status = process.isRunning ? -1 : process.terminationStatus
                continuation.resume(returning: (status, String(decoding: data, as: UTF8.self)))
            } catch {
                continuation.resume(throwing: error)
            }
        }
        thread.start()
    }
}

/// GET `path` on a process's observability listener: status and body (0 when nothing answers).
func httpGet(port: Int, _ path: String) async -> (status: Int, body: String) {
    guard let answer = try? await command(["curl", "-s", "-m", "2", "-w", "\n%{http_code}", "http://127.0.0.1:\(port)\(path)"]) else {
        return (0, "")
    }
    var lines = answer.output.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    let status = Int(lines.popLast() ?? "") ?? 0
    return (status, lines.joined(separator: "\n"))
}

/// Waits until `condition` holds (polling every 50 ms), at most `limit`.
func eventually(within limit: Duration, _ condition: () async -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + limit
    while ContinuousClock.now < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(50))
    }
    return await condition()
}

/// The `value` of every NDJSON line a `file` target wrote so far (values here hold no quotes).
func lines(of path: String) -> [String] {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
    return text.split(separator: "\n").compactMap { line in
        guard let range = line.range(of: "\"value\":\"") else { return nil }
        let rest = line[range.upperBound...]
        return rest.firstIndex(of: "\"").map { String(rest[..<$0]) }
    }
}

/// A certificate authority with a server certificate (localhost, 127.0.0.1) and a client
/// certificate, made with the openssl command in a scratch folder. Nothing is committed.
struct TestPKI {
    let ca: String
    let serverCert: String
    let serverKey: String
    let clientCert: String
    let clientKey: String

    static func make(in scratch: Scratch, prefix: String) async throws -> TestPKI {
        let script = """
            set -e
            cat > \(prefix)-server.ext <<'EOF'
            subjectAltName=DNS:localhost,IP:127.0.0.1
            basicConstraints=CA:FALSE
            extendedKeyUsage=serverAuth
            EOF
            cat > \(prefix)-client.ext <<'EOF'
            basicConstraints=CA:FALSE
            extendedKeyUsage=clientAuth
            EOF
            openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
              -subj "/CN=\(prefix) test authority" -addext basicConstraints=critical,CA:TRUE \
              -addext keyUsage=critical,keyCertSign,cRLSign -keyout \(prefix)-ca.key -out \(prefix)-ca.pem
            openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=localhost" \
              -keyout \(prefix)-server.key -out \(prefix)-server.csr
            openssl x509 -req -in \(prefix)-server.csr -CA \(prefix)-ca.pem -CAkey \(prefix)-ca.key -CAcreateserial \
              -days 2 -extfile \(prefix)-server.ext -out \(prefix)-server.pem
            openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=\(prefix) sender" \
              -keyout \(prefix)-client.key -out \(prefix)-client.csr
            openssl x509 -req -in \(prefix)-client.csr -CA \(prefix)-ca.pem -CAkey \(prefix)-ca.key -CAcreateserial \
              -days 2 -extfile \(prefix)-client.ext -out \(prefix)-client.pem
            """
        let result = try await command(["bash", "-c", script], in: scratch.url.path)
        guard result.status == 0 else { throw LinkTestFailure("openssl failed: \(result.output)") }
        return TestPKI(
            ca: scratch.path("\(prefix)-ca.pem"),
            serverCert: scratch.path("\(prefix)-server.pem"), serverKey: scratch.path("\(prefix)-server.key"),
            clientCert: scratch.path("\(prefix)-client.pem"), clientKey: scratch.path("\(prefix)-client.key")
        )
    }
}

/// The document of a receiving process: a link source into a file target.
func receiverDocument(linkPort: Int, httpPort: Int, output: String, security: String = "", fileDelay: String? = nil) -> String {
    """
    apiVersion: switchyard.dev/v1alpha1
    kind: Connector
    metadata:
      name: link-receiver
    spec:
      sources:
        - name: link-in
          link:
            listen: "127.0.0.1:\(linkPort)"
            creditMessages: 2000
    \(security)
      targets:
        - name: out
          file:
            path: "\(output)"
            fsync: false
    \(fileDelay.map { "        delay: \($0)" } ?? "")
      routes:
        - from: [link-in]
          to: [out]
      observability:
        listen: "127.0.0.1:\(httpPort)"
    """
}

/// The document of a sending process: `count` generated messages `m-0` ... into a link target.
func senderDocument(linkPort: Int, httpPort: Int, count: Int, rate: Int? = nil, security: String = "") -> String {
    """
    apiVersion: switchyard.dev/v1alpha1
    kind: Connector
    metadata:
      name: link-sender
    spec:
      sources:
        - name: gen
          generate:
            count: \(count)
            shards: 2
            batchSize: 100
    \(rate.map { "        rate: \($0)" } ?? "")
            value: "m-{{ partition }}-{{ offset }}"
            key: "k-{{ offset }}"
            headers:
              origin: edge
      targets:
        - name: link-out
          link:
            address: "127.0.0.1:\(linkPort)"
            frameMessages: 200
            reconnectDelay: 50ms
            reconnectMaxDelay: 500ms
            connectTimeout: 2s
    \(security)
      routes:
        - from: [gen]
          to: [link-out]
      observability:
        listen: "127.0.0.1:\(httpPort)"
    """
}

/// The values `count` messages of `senderDocument` carry (two shards, offsets per shard).
func expectedValues(_ count: Int) -> Set<String> {
    var values = Set<String>()
    // The generator alternates shards per batch of 100: shard = batch % 2, offsets per shard.
    var next = [0, 0]
    var generated = 0
    var batch = 0
    while generated < count {
        let shard = batch % 2
        let size = min(100, count - generated)
        for _ in 0..<size {
            values.insert("m-\(shard)-\(next[shard])")
            next[shard] += 1
        }
        generated += size
        batch += 1
    }
    return values
}
