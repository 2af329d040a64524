import Foundation
import TestBedSupport
import Logging
import Synchronization
import SwitchyardCore
import Testing
@testable import KafkaConnector

/// Silent unless `SWITCHYARD_TEST_LOG` is set (then the connectors log to standard error).
let quietLogger: Logger = {
    guard ProcessInfo.processInfo.environment["SWITCHYARD_TEST_LOG"] != nil else {
        return Logger(label: "switchyard.kafka.tests", factory: { _ in SwiftLogNoOpLogHandler() })
    }
    var logger = Logger(label: "switchyard.kafka.tests", factory: { StreamLogHandler.standardError(label: $0) })
    logger.logLevel = .info
    return logger
}()

// MARK: the test bed

/// The test bed's env file (`.state/services.env`), found from this file's path.
enum TestBed {
    static let root: URL = ServicesFile.root

    static func environment() throws -> [String: String] {
        do { return try ServicesFile.environment() } catch {
            Issue.record("\(error)")
            throw TestBedMissing()
        }
    }

    static func value(_ name: String) throws -> String {
        do { return try ServicesFile.value(name) } catch {
            Issue.record("\(error)")
            throw TestBedMissing()
        }
    }
}

struct TestBedMissing: Error {}

/// A mock Kafka cluster of this test's own (`kafka-mock`), stopped with SIGTERM.
final class MockCluster: Sendable {
    let process: Process
    let brokers: String
    /// The helper's stdin and stdout when it was started with `control`: fault injection.
    let commands: FileHandle?
    let answers: FileHandle

    init(brokers count: Int = 1, topics: [String: Int], control: Bool = false) throws {
        let binary = try TestBed.value("SWITCHYARD_KAFKA_MOCK_BIN")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments =
            ["--brokers", String(count)] + topics.flatMap { ["--topic", "\($0.key):\($0.value)"] } + (control ? ["--control"] : [])
        let output = Pipe()
        process.standardOutput = output
        let input = Pipe()
        if control { process.standardInput = input }
        process.standardError = FileHandle.nullDevice
        try process.run()
        var line: [UInt8] = []
        let handle = output.fileHandleForReading
        while true {
            let chunk = handle.readData(ofLength: 1)
            if chunk.isEmpty || chunk.first == UInt8(ascii: "\n") { break }
            line.append(chunk.first!)
        }
        self.process = process
        self.brokers = String(decoding: line, as: UTF8.self)
        self.commands = control ? input.fileHandleForWriting : nil
        self.answers = handle
        if brokers.isEmpty {
            process.terminate()
            Issue.record("kafka-mock printed no bootstrap list")
            throw TestBedMissing()
        }
    }

    /// Sends one fault injection command (`down 1`, `up 1`, `errors 1 20 6`) and waits for
    /// the helper's answer.
    func inject(_ command: String) throws {
        guard let commands else { throw TestBedMissing() }
        commands.write(Data((command + "\n").utf8))
        var line: [UInt8] = []
        while true {
            let chunk = answers.readData(ofLength: 1)
            if chunk.isEmpty || chunk.first == UInt8(ascii: "\n") { break }
            line.append(chunk.first!)
        }
        let answer = String(decoding: line, as: UTF8.self)
        if answer != "ok" { Issue.record("kafka-mock answered '\(answer)' to '\(command)'") }
    }

    func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
    }

    deinit { stop() }
}

/// Runs a command, feeding `input`; returns its standard output. Records an issue on failure.
@discardableResult
func run(_ arguments: [String], input: String? = nil, recordFailure: Bool = true, sourceLocation: SourceLocation = #_sourceLocation) throws
    -> String
{
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    let output = Pipe()
    let errors = Pipe()
    let stdin = Pipe()
    process.standardOutput = output
    process.standardError = errors
    process.standardInput = stdin
    try process.run()
    if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
    try stdin.fileHandleForWriting.close()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    let errorText = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    let status = exitStatus(process) ?? 0
    if status != 0 && recordFailure {
        Issue.record("\(arguments.joined(separator: " ")) failed (\(status)): \(errorText)", sourceLocation: sourceLocation)
    }
    return String(decoding: data, as: UTF8.self)
}

// MARK: options

/// A document fragment, turned into a ``ConfigNode``.
indirect enum Node: ExpressibleByStringLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral {
    case scalar(String)
    case list([Node])
    case map([(String, Node)])

    init(stringLiteral value: String) { self = .scalar(value) }
    init(arrayLiteral elements: Node...) { self = .list(elements) }
    init(dictionaryLiteral elements: (String, Node)...) { self = .map(elements) }

    var config: ConfigNode {
        switch self {
        case .scalar(let text): ConfigNode(.scalar(.init(text: text)), line: 1)
        case .list(let items): ConfigNode(.sequence(items.map(\.config)), line: 1)
        case .map(let entries): ConfigNode(.mapping(entries.map { ConfigNode.Entry(key: $0.0, keyLine: 1, value: $0.1.config) }), line: 1)
        }
    }
}

/// Decodes a `kafka` source or target entry the way the document loader does.
struct Issues: Error {
    var list: [ConfigIssue]
}

func decode(_ role: ConnectorRole, _ options: Node, index: Int = 0) -> Result<ConnectorEntry, Issues> {
    let kind = role == .source ? KafkaSource.kind.options : KafkaTarget.kind.options
    let validate = role == .source ? KafkaSource.kind.validate : KafkaTarget.kind.validate
    var decoder = OptionDecoder(connectorKinds: [role: [("kafka", kind, validate)]])
    let entry: Node = ["name": "k", "kafka": options]
    let path = role == .source ? "spec.sources[\(index)]" : "spec.targets[\(index)]"
    if case .connector(let value)? = decoder.decode(entry.config, as: .connector(role), path: path), decoder.issues.isEmpty {
        return .success(value)
    }
    return .failure(Issues(list: decoder.issues))
}

func makeSource(memoryLimit: Int = 64 << 20, _ options: Node, sourceLocation: SourceLocation = #_sourceLocation) throws -> KafkaSource {
    switch decode(.source, options) {
    case .success(let entry):
        return try KafkaSource.kind.make(
            ConnectorSetup(name: "kafka-in", options: entry.options, logger: quietLogger, memoryLimit: memoryLimit)) as! KafkaSource
    case .failure(let issues):
        Issue.record("the source options should be valid: \(issues.list)", sourceLocation: sourceLocation)
        throw TestBedMissing()
    }
}

func makeTarget(_ options: Node, sourceLocation: SourceLocation = #_sourceLocation) throws -> KafkaTarget {
    switch decode(.target, options) {
    case .success(let entry):
        return try KafkaTarget.kind.make(
            ConnectorSetup(name: "kafka-out", options: entry.options, logger: quietLogger, memoryLimit: 64 << 20)) as! KafkaTarget
    case .failure(let issues):
        Issue.record("the target options should be valid: \(issues.list)", sourceLocation: sourceLocation)
        throw TestBedMissing()
    }
}

/// Consumer settings that make group joins fast on the mock cluster.
let fastGroup: Node = [
    "session.timeout.ms": "3000", "heartbeat.interval.ms": "500", "topic.metadata.refresh.interval.ms": "1000",
]

// MARK: the pipeline

/// A target that records what it wrote; `hold` makes chosen messages fail (retriably) forever.
final class RecordingTarget: Target {
    let hold: @Sendable (Message) -> Bool
    let delay: Duration
    let holdKind: ErrorKind
    let log = Mutex<[Message]>([])

    init(delay: Duration = .zero, holdKind: ErrorKind = .retriable, hold: @escaping @Sendable (Message) -> Bool = { _ in false }) {
        self.hold = hold
        self.delay = delay
        self.holdKind = holdKind
    }

    func write(_ messages: [Message]) async throws -> WriteResult {
        if delay > .zero { try await Task.sleep(for: delay) }
        var failures: [(index: Int, error: ConnectorError)] = []
        var written: [Message] = []
        for (index, message) in messages.enumerated() {
            if hold(message) {
                failures.append((index, ConnectorError(holdKind, "held back by the test")))
            } else {
                written.append(message)
            }
        }
        log.withLock { $0.append(contentsOf: written) }
        return WriteResult(failures: failures)
    }

    var written: [Message] { log.withLock { $0 } }
}

/// A Kafka source feeding a recording target through the core's router, in process.
final class KafkaPipeline: Sendable {
    let router: Router
    let runner: TargetRunner
    let context: SourceContext
    let source: KafkaSource
    let target: RecordingTarget
    let runnerTask: Task<Void, Never>
    let sourceTask: Task<Void, any Error>

    init(source: KafkaSource, target: RecordingTarget, budget: Int = 64 << 20) {
        self.source = source
        self.target = target
        router = Router(budget: ByteBudget(limit: budget), logger: quietLogger)
        let settings = DeliverySettings(
            retry: RetryPolicy(initialBackoff: .milliseconds(5), maxBackoff: .milliseconds(50)), deadLetter: nil)
        runner = TargetRunner(
            name: "recording", target: target, batching: BatchingPolicy(maxMessages: 500, maxBytes: 1 << 20, maxDelay: .milliseconds(2)),
            lanes: 1, queueCapacity: 10_000, settings: settings, logger: quietLogger)
        settings.setRunners(["recording": runner])
        router.install(routes: [Route(name: "r", from: ["kafka-in"], to: ["recording"])], runners: ["recording": runner])
        context = SourceContext(name: "kafka-in", source: source, router: router, logger: quietLogger)
        let runner = self.runner
        runnerTask = Task { await runner.run() }
        let context = self.context
        sourceTask = Task { try await source.run(context: context) }
    }

    /// The shutdown sequence of the runtime: stop fetching, drain (bounded), close the source.
    func shutdown(drain: Duration = .seconds(5)) async throws {
        context.stop()
        // Like the runtime: a source still waiting in submit is cancelled after the drain time.
        let sourceTask = self.sourceTask
        let stopper = Task {
            try? await Task.sleep(for: drain)
            sourceTask.cancel()
        }
        _ = await sourceTask.result
        stopper.cancel()
        let ledger = context.ledger
        let drained = Task { await ledger.waitUntilDrained() }
        let timeout = Task {
            try? await Task.sleep(for: drain)
            drained.cancel()
        }
        await drained.value
        timeout.cancel()
        await source.close()
        runner.flush()
        runner.closeQueues()
        runnerTask.cancel()
        await runnerTask.value
    }
}

/// Waits until `condition` holds (checking every 20 ms), at most `limit`; records an issue when
/// it never does.
@discardableResult
func eventually(
    _ what: String, within limit: Duration = .seconds(30), sourceLocation: SourceLocation = #_sourceLocation,
    _ condition: () -> Bool
) async -> Bool {
    let deadline = ContinuousClock.now + limit
    while !condition() {
        if ContinuousClock.now >= deadline {
            Issue.record("gave up waiting until \(what)", sourceLocation: sourceLocation)
            return false
        }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return true
}

// MARK: committed offsets

final class NoEvents: RDKafkaConsumerEvents {
    func assigned(_ partitions: [TopicPartition]) {}
    func revoked(_ partitions: [TopicPartition], lost: Bool) {}
    func commitCompleted(_ entries: [(partition: TopicPartition, offset: Int64, error: KafkaError?)], error: KafkaError?) {}
    func clientError(_ error: KafkaError) {}
}

/// The offsets `group` committed for `topic`'s partitions (negative: none), asked of the cluster.
func committedOffsets(brokers: String, group: String, topic: String, partitions: Int) throws -> [Int32: Int64] {
    let config = RDKafkaConfig()
    try config.set([("bootstrap.servers", brokers), ("group.id", group)])
    let events = NoEvents()
    let consumer = try RDKafkaConsumer(config: config, topics: [], logger: quietLogger, events: events)
    let list = (0..<partitions).map { TopicPartition(topic: topic, partition: Int32($0)) }
    let offsets = try consumer.committed(list, timeoutMs: 10_000)
    consumer.close()
    return Dictionary(uniqueKeysWithValues: offsets.map { ($0.key.partition, $0.value) })
}

// MARK: the switchyard binary as a process

/// A `switchyard run` process on a document in a scratch folder, writing to a `file` target.
final class RuntimeProcess {
    static let binary = TestBed.root.appendingPathComponent(".build/debug/switchyard").path
    let directory: URL
    let config: URL
    let output: String
    let port: Int
    private var processes: [Process] = []

    /// `document` is called with the output path and the HTTP port; it returns the YAML.
    init(_ name: String, document: (_ output: String, _ port: Int) -> String) throws {
        guard FileManager.default.isExecutableFile(atPath: Self.binary) else {
            Issue.record("\(Self.binary) is missing: run `swift build` first")
            throw TestBedMissing()
        }
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "switchyard-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        output = directory.appendingPathComponent("out.ndjson").path
        config = directory.appendingPathComponent("\(name).yaml")
        port = Int.random(in: 20_000...29_000)
        try document(output, port).write(to: config, atomically: true, encoding: .utf8)
    }

    deinit {
        for process in processes where process.isRunning { kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(at: directory)
    }

    /// Starts another `switchyard run` on the document; its stderr goes to `log-N.txt`.
    @discardableResult
    func start() throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["run", "-c", config.path]
        let log = directory.appendingPathComponent("log-\(processes.count).txt")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle(forWritingAtPath: log.path)
        try process.run()
        processes.append(process)
        return process
    }

    /// The last lines of every process's log, for failure messages.
    var logs: String {
        (0..<processes.count).map { index in
            let text = (try? String(contentsOf: directory.appendingPathComponent("log-\(index).txt"), encoding: .utf8)) ?? ""
            return "process \(index): " + String(text.suffix(1500))
        }.joined(separator: "\n")
    }

    /// The `value` of every line written so far.
    func values() -> [String] {
        guard let text = try? String(contentsOfFile: output, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            guard let range = line.range(of: "\"value\":\"") else { return nil }
            let rest = line[range.upperBound...]
            return rest.firstIndex(of: "\"").map { String(rest[..<$0]) }
        }
    }

    /// The HTTP status of `path` on the process's listener (0 when nothing answers).
    func status(_ path: String) -> Int {
        let answer = try? run(
            ["curl", "-s", "-o", "/dev/null", "-m", "2", "-w", "%{http_code}", "http://127.0.0.1:\(port)\(path)"], recordFailure: false)
        return Int(answer ?? "") ?? 0
    }
}
