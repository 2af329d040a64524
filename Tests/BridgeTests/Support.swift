import Foundation
import TestBedSupport
import Testing
#if canImport(Glibc)
    import Glibc
#endif

/// The repository, the test bed's addresses and the `switchyard` binary under test.
enum Bed {
    static let root: URL = ServicesFile.root

    static func environment() throws -> [String: String] {
        do { return try ServicesFile.environment() } catch {
            Issue.record("\(error)")
            throw BedMissing()
        }
    }

    static func value(_ name: String) throws -> String {
        do { return try ServicesFile.value(name) } catch {
            Issue.record("\(error)")
            throw BedMissing()
        }
    }

    /// `SWITCHYARD_BIN`, else the `switchyard` built beside this test executable (so
    /// `swift test --scratch-path DIR` tests DIR's binary), else `.build/debug/switchyard`.
    static var binary: String {
        if let path = ProcessInfo.processInfo.environment["SWITCHYARD_BIN"] { return path }
        if let executable = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            let sibling = URL(fileURLWithPath: executable).deletingLastPathComponent().appendingPathComponent("switchyard").path
            if FileManager.default.isExecutableFile(atPath: sibling) { return sibling }
        }
        return root.appendingPathComponent(".build/debug/switchyard").path
    }

    static func config(_ name: String) -> String { root.appendingPathComponent("configs/\(name)").path }

    static func scratch(_ name: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent(
            "switchyard-bridge-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    static func unique(_ prefix: String) -> String { "\(prefix)-\(UInt32.random(in: 0...UInt32.max))" }

    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

struct BedMissing: Error {}

// MARK: child processes (posix_spawn, reaped with waitpid polled from async code)

/// A child process. Never waited for by blocking: `exit(within:)` polls `waitpid(WNOHANG)`
/// between `Task.sleep`s, so no cooperative thread is held.
final class Child: @unchecked Sendable {
    let pid: pid_t
    private var status: Int32?

    /// Starts `arguments` with `environment` added to this process's, standard input from
    /// `input` (a path, or /dev/null), standard output and error to the given paths.
    init(_ arguments: [String], environment: [String: String] = [:], input: String = "/dev/null", output: String, errors: String) throws {
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        var envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, input, O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, errors, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        var pid: pid_t = 0
        let result = posix_spawnp(&pid, arguments[0], &actions, nil, &argv, &envp)
        guard result == 0 else {
            Issue.record("cannot start \(arguments[0]): error \(result)")
            throw BedMissing()
        }
        self.pid = pid
    }

    func signal(_ number: Int32) {
        if status == nil { kill(pid, number) }
    }

    /// The exit status (128 + signal when killed), or nil when it is still running after `limit`.
    func exit(within limit: Duration) async -> Int32? {
        let deadline = ContinuousClock.now + limit
        while true {
            if let status { return status }
            var raw: Int32 = 0
            let reaped = waitpid(pid, &raw, WNOHANG)
            if reaped == pid {
                let signal = raw & 0x7f
                status = signal == 0 ? (raw >> 8) & 0xff : 128 + signal
                return status
            }
            if reaped < 0 && errno != EINTR { return -1 }
            if ContinuousClock.now >= deadline { return nil }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// SIGKILL and reap (for cleanup).
    func kill9() async {
        signal(SIGKILL)
        _ = await exit(within: .seconds(10))
    }
}

/// Runs `command` with /bin/sh and returns its standard output; records an issue when it
/// fails or overstays `limit`.
@discardableResult
func sh(
    _ command: String, environment: [String: String] = [:], input: String? = nil, limit: Duration = .seconds(60),
    recordFailure: Bool = true, sourceLocation: SourceLocation = #_sourceLocation
) async throws -> String {
    let directory = FileManager.default.temporaryDirectory
    let tag = "\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    let out = directory.appendingPathComponent("switchyard-sh-\(tag).out").path
    let err = directory.appendingPathComponent("switchyard-sh-\(tag).err").path
    let inPath = directory.appendingPathComponent("switchyard-sh-\(tag).in").path
    defer {
        for path in [out, err, inPath] { try? FileManager.default.removeItem(atPath: path) }
    }
    if let input { try input.write(toFile: inPath, atomically: true, encoding: .utf8) }
    let child = try Child(
        ["/bin/sh", "-c", command], environment: environment, input: input == nil ? "/dev/null" : inPath, output: out, errors: err)
    guard let status = await child.exit(within: limit) else {
        await child.kill9()
        Issue.record("`\(command.prefix(200))` did not finish within \(limit)", sourceLocation: sourceLocation)
        throw BedMissing()
    }
    let output = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
    if status != 0 {
        guard recordFailure else { throw BedMissing() }
        let errors = (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""
        Issue.record("`\(command.prefix(200))` exited \(status): \(errors.suffix(2000))", sourceLocation: sourceLocation)
        throw BedMissing()
    }
    return output
}

/// Waits until `condition` holds (checking every 100 ms), at most `limit`; records an issue
/// naming `what` when it never does.
@discardableResult
func eventually(
    _ what: String, within limit: Duration = .seconds(40), sourceLocation: SourceLocation = #_sourceLocation,
    _ condition: () async throws -> Bool
) async rethrows -> Bool {
    let deadline = ContinuousClock.now + limit
    while true {
        if try await condition() { return true }
        if ContinuousClock.now >= deadline {
            Issue.record("gave up waiting until \(what)", sourceLocation: sourceLocation)
            return false
        }
        try? await Task.sleep(for: .milliseconds(100))
    }
}

// MARK: Kafka clusters

/// A mock Kafka cluster of its own (`kafka-mock`, a separate process), stopped with SIGTERM.
final class Cluster: @unchecked Sendable {
    let child: Child
    let brokers: String

    private init(child: Child, brokers: String) {
        self.child = child
        self.brokers = brokers
    }

    /// Starts a cluster with `topics` (name: partitions) and waits for its bootstrap list.
    static func start(_ topics: [String: Int], brokers: Int = 1) async throws -> Cluster {
        let binary = try Bed.value("SWITCHYARD_KAFKA_MOCK_BIN")
        let directory = try Bed.scratch("mock")
        let portFile = directory.appendingPathComponent("bootstraps").path
        let arguments =
            [binary, "--brokers", String(brokers), "--port-file", portFile] + topics.flatMap { ["--topic", "\($0.key):\($0.value)"] }
        let child = try Child(arguments, output: "/dev/null", errors: "/dev/null")
        var list = ""
        await eventually("kafka-mock wrote its bootstrap list", within: .seconds(10)) {
            list = ((try? String(contentsOfFile: portFile, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            return !list.isEmpty
        }
        guard !list.isEmpty else {
            await child.kill9()
            throw BedMissing()
        }
        return Cluster(child: child, brokers: list)
    }

    func stop() async {
        child.signal(SIGTERM)
        if await child.exit(within: .seconds(10)) == nil { await child.kill9() }
    }

    /// SIGTERM without waiting (cleanup in `defer`).
    func terminate() { child.signal(SIGTERM) }

    deinit { child.signal(SIGTERM) }

    /// Produces `lines` (`key|value`) to `topic` with kcat, every message with `headers`.
    func produce(_ topic: String, keyed lines: [String], headers: [(String, String)] = [], partition: Int? = nil) async throws {
        var command = "kcat -P -b '\(brokers)' -t '\(topic)' -K '|' -X linger.ms=5"
        for (name, value) in headers { command += " -H '\(name)=\(value)'" }
        if let partition { command += " -p \(partition)" }
        try await sh(command, input: lines.joined(separator: "\n") + "\n")
    }

    /// Every record of `topic`, read with kcat from the beginning to the current end.
    func records(_ topic: String) async -> [Record] {
        // A topic that does not exist yet (created on first write) reads as empty.
        let text =
            (try? await sh("kcat -C -b '\(brokers)' -t '\(topic)' -o beginning -e -q -f '%p\\t%k\\t%T\\t%h\\t%s\\n'", recordFailure: false))
            ?? ""
        return text.split(separator: "\n", omittingEmptySubsequences: true).compactMap(Record.init)
    }
}

/// One Kafka record as kcat prints it: partition, key, timestamp, headers, value.
struct Record: Sendable, CustomStringConvertible {
    var partition: Int
    var key: String
    var timestamp: Int64
    var headers: [(String, String)]
    var value: String

    init?(_ line: Substring) {
        let fields = line.split(separator: "\t", maxSplits: 4, omittingEmptySubsequences: false)
        guard fields.count == 5, let partition = Int(fields[0]) else { return nil }
        self.partition = partition
        key = String(fields[1])
        timestamp = Int64(fields[2]) ?? 0
        headers = fields[3].split(separator: ",").compactMap { pair in
            guard let equals = pair.firstIndex(of: "=") else { return nil }
            return (String(pair[..<equals]), String(pair[pair.index(after: equals)...]))
        }
        value = String(fields[4])
    }

    func header(_ name: String) -> String? { headers.first { $0.0 == name }?.1 }

    var description: String { "p\(partition) \(key) \(headers) \(value)" }
}

// MARK: RabbitMQ

enum Rabbit {
    /// The broker's URL. Another suite may be restarting the broker (scripts/services stop and
    /// start rewrite the env file): wait up to 30 s for it to be listed again.
    static func url() async throws -> String {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if let url = try Bed.environment()["SWITCHYARD_AMQP_URL"], !url.isEmpty { return url }
            try await Task.sleep(for: .milliseconds(200))
        }
        return try Bed.value("SWITCHYARD_AMQP_URL")
    }

    /// (ready, unacknowledged) messages of `queue`, from rabbitmqctl; nil when it does not exist.
    static func counts(_ queue: String) async throws -> (ready: Int, unacknowledged: Int)? {
        let ctl = try Bed.value("SWITCHYARD_RABBITMQCTL")
        let output = try await sh("'\(ctl)' list_queues -q --no-table-headers name messages_ready messages_unacknowledged")
        for line in output.split(separator: "\n") {
            let fields = line.split(whereSeparator: { $0 == "\t" || $0 == " " })
            if fields.count == 3, fields[0] == queue, let ready = Int(fields[1]), let unacked = Int(fields[2]) { return (ready, unacked) }
        }
        return nil
    }

    /// Best effort, and silent: it also runs from cleanup tasks that outlive their test, when
    /// another suite may have the broker stopped.
    static func deleteQueue(_ queue: String) async {
        guard let ctl = (try? Bed.environment())?["SWITCHYARD_RABBITMQCTL"], !ctl.isEmpty else { return }
        _ = try? await sh("'\(ctl)' delete_queue '\(queue)' >/dev/null 2>&1 || true")
    }
}

// MARK: the switchyard binary

/// A `switchyard run -c CONFIG` process with its environment; stderr goes to a log file.
final class Runtime: @unchecked Sendable {
    let child: Child
    let port: Int
    let log: String
    let name: String

    init(_ config: String, environment: [String: String], name: String, directory: URL) throws {
        port = Bed.freePort()
        self.name = name
        log = directory.appendingPathComponent("\(name).log").path
        var env = environment
        env["METRICS_PORT"] = String(port)
        child = try Child([Bed.binary, "run", "-c", config], environment: env, output: log, errors: log)
    }

    /// The sum of every sample of `metric` whose labels contain all of `labels`
    /// (`source="a"`), nil when the endpoint does not answer.
    func metric(_ metric: String, _ labels: [String] = []) async -> Double? {
        guard let text = try? await sh("curl -sf -m 2 http://127.0.0.1:\(port)/metrics", recordFailure: false) else { return nil }
        var total = 0.0
        for line in text.split(separator: "\n") where line.hasPrefix(metric) {
            let rest = line.dropFirst(metric.count)
            guard rest.first == " " || rest.first == "{" else { continue }
            guard labels.allSatisfy({ line.contains($0) }) else { continue }
            if let value = line.split(separator: " ").last.flatMap({ Double($0) }) { total += value }
        }
        return total
    }

    /// The HTTP status of `path` (0 when nothing answers).
    func status(_ path: String) async -> Int {
        let answer = try? await sh("curl -s -o /dev/null -m 2 -w '%{http_code}' http://127.0.0.1:\(port)\(path) || true")
        return Int(answer ?? "") ?? 0
    }

    var logText: String { String(((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").suffix(3000)) }

    deinit { child.signal(SIGKILL) }

    /// SIGTERM, then the exit status (nil if it did not exit within 30 s; then SIGKILL).
    func stop() async -> Int32? {
        child.signal(SIGTERM)
        let status = await child.exit(within: .seconds(30))
        if status == nil { await child.kill9() }
        return status
    }
}
