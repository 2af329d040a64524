import Foundation
import TestBedSupport
import Logging
import Synchronization
import Testing
@testable import RabbitMQConnector
import SwitchyardCore

let quietLogger = Logger(label: "switchyard.tests.rabbitmq", factory: { _ in SwiftLogNoOpLogHandler() })

/// The test bed's addresses, from `.state/services.env`.
enum TestBed {
    static let root = ServicesFile.root

    static func environment() throws -> [String: String] {
        do { return try ServicesFile.environment() } catch { throw TestBedMissing(message: error.description) }
    }

    static func amqpURL() throws -> String {
        guard let url = try environment()["SWITCHYARD_AMQP_URL"] else {
            throw TestBedMissing(message: "SWITCHYARD_AMQP_URL is not in .state/services.env: run scripts/services start rabbitmq")
        }
        return url
    }

    /// Runs rabbitmqctl against the test bed's node; returns its standard output.
    static func rabbitmqctl(_ arguments: [String]) throws -> String {
        guard let ctl = try environment()["SWITCHYARD_RABBITMQCTL"] else {
            throw TestBedMissing(message: "SWITCHYARD_RABBITMQCTL missing: run scripts/services start")
        }
        return try run(ctl, arguments)
    }

    /// Runs scripts/services (see ``ServicesFile/services(_:)``).
    static func services(_ arguments: [String]) throws {
        do { try ServicesFile.services(arguments) } catch { throw TestBedMissing(message: error.description) }
    }

    /// `services` on a thread of its own, so that the wait (several seconds for RabbitMQ)
    /// does not hold one of the cooperative pool's threads that other tests run on.
    static func servicesOffPool(_ arguments: [String]) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            Thread.detachNewThread {
                do {
                    try services(arguments)
                    continuation.resume()
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }

    static func run(_ program: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        _ = exitStatus(process)
        return String(decoding: data, as: UTF8.self)
    }

    /// (ready, unacknowledged) of `queue`, from rabbitmqctl.
    static func queueCounts(_ queue: String) throws -> (ready: Int, unacknowledged: Int)? {
        let output = try rabbitmqctl(["list_queues", "-q", "--no-table-headers", "name", "messages_ready", "messages_unacknowledged"])
        for line in output.split(separator: "\n") {
            let fields = line.split(whereSeparator: { $0 == "\t" || $0 == " " })
            if fields.count == 3, fields[0] == queue, let ready = Int(fields[1]), let unacked = Int(fields[2]) { return (ready, unacked) }
        }
        return nil
    }

    static func uniqueName(_ prefix: String) -> String {
        "switchyard-test-\(prefix)-\(UInt32.random(in: 0...UInt32.max))"
    }
}

struct TestBedMissing: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// A broker connection for arranging and inspecting tests (declare, delete, count).
final class Admin {
    let connection: AMQPConnection

    init() throws {
        guard case .success(let url) = AMQPURL.parse(try TestBed.amqpURL()) else {
            throw TestBedMissing(message: "bad SWITCHYARD_AMQP_URL")
        }
        connection = try AMQPConnection(AMQPConnectionSettings(url: url, tls: AMQPTLS(), heartbeat: 0, name: "test-admin"))
    }

    func declare(_ queue: String) throws {
        try connection.declareQueue(queue, passive: false, durable: true)
    }

    func messageCount(_ queue: String) throws -> Int {
        try connection.declareQueue(queue, passive: true).messages
    }

    func delete(_ queue: String) {
        _ = deleteQueue(connection, queue)
    }

    deinit { connection.close() }
}

import CRabbitMQ

func deleteQueue(_ connection: AMQPConnection, _ queue: String) -> Bool {
    _ = amqp_queue_delete(connection.state, 1, amqp_cstring_bytes(queue), 0, 0)
    return amqp_get_rpc_reply(connection.state).reply_type == AMQP_RESPONSE_NORMAL
}

// MARK: documents

/// A compact way to write option documents in tests.
indirect enum Node {
    case text(String)
    case quoted(String)
    case list([Node])
    case object([(String, Node)])

    var config: ConfigNode {
        switch self {
        case .text(let text): ConfigNode(.scalar(.init(text: text)), line: 1)
        case .quoted(let text): ConfigNode(.scalar(.init(text: text, quoted: true)), line: 1)
        case .list(let items): ConfigNode(.sequence(items.map(\.config)), line: 1)
        case .object(let entries):
            ConfigNode(.mapping(entries.map { ConfigNode.Entry(key: $0.0, keyLine: 1, value: $0.1.config) }), line: 1)
        }
    }
}

/// Decodes a `rabbitmq` source or target entry as the document loader does.
func decode(_ role: ConnectorRole, _ options: Node) -> (entry: ConnectorEntry?, issues: [ConfigIssue]) {
    var decoder = OptionDecoder(connectorKinds: ConnectorRegistry([RabbitMQConnectors.family]).decoderKinds)
    let entry = Node.object([("name", .text("rabbit")), ("rabbitmq", options)])
    let path = role == .source ? "spec.sources[0]" : "spec.targets[0]"
    if case .connector(let decoded)? = decoder.decode(entry.config, as: .connector(role), path: path), decoder.issues.isEmpty {
        return (decoded, [])
    }
    return (nil, decoder.issues)
}

func makeSource(_ options: Node, memoryLimit: Int = 256 << 20) throws -> RabbitMQSource {
    let (entry, issues) = decode(.source, options)
    guard let entry else { throw TestBedMissing(message: "invalid source options: \(issues)") }
    return try RabbitMQSource.kind.make(
        ConnectorSetup(name: "rabbit", options: entry.options, logger: quietLogger, memoryLimit: memoryLimit)) as! RabbitMQSource
}

func makeTarget(_ options: Node) throws -> RabbitMQTarget {
    let (entry, issues) = decode(.target, options)
    guard let entry else { throw TestBedMissing(message: "invalid target options: \(issues)") }
    return try RabbitMQTarget.kind.make(
        ConnectorSetup(name: "rabbit-out", options: entry.options, logger: quietLogger, memoryLimit: 256 << 20)) as! RabbitMQTarget
}

// MARK: an in-process pipeline

/// A target that records what it wrote; its behaviour per call can be scripted.
final class RecordingTarget: Target {
    typealias Behavior = @Sendable (_ call: Int, _ messages: [Message]) async throws -> WriteResult
    let behavior: Behavior
    let log = Mutex<(calls: Int, written: [Message])>((0, []))

    init(_ behavior: @escaping Behavior = { _, _ in .allWritten }) {
        self.behavior = behavior
    }

    func write(_ messages: [Message]) async throws -> WriteResult {
        let call = log.withLock { log in
            defer { log.calls += 1 }
            return log.calls
        }
        let result = try await behavior(call, messages)
        let failed = Set(result.failures.map(\.index))
        log.withLock { log in
            for (index, message) in messages.enumerated() where !failed.contains(index) { log.written.append(message) }
        }
        return result
    }

    var written: [Message] { log.withLock { $0.written } }
    var calls: Int { log.withLock { $0.calls } }
}

/// A source feeding target runners through the router, as the runtime wires them.
final class PipelineHarness: Sendable {
    let router: Router
    let settings: DeliverySettings
    let runners: [String: TargetRunner]
    let context: SourceContext
    let source: any Source
    let runnerTask: Task<Void, Never>
    let sourceTask: Task<Void, any Error>

    init(source: any Source, targets: [(String, any Target)], to: [String], deadLetter: String? = nil, budget: Int = 256 << 20) {
        router = Router(budget: ByteBudget(limit: budget), logger: quietLogger)
        settings = DeliverySettings(
            retry: RetryPolicy(initialBackoff: .milliseconds(5), maxBackoff: .milliseconds(50)), deadLetter: deadLetter)
        var runners: [String: TargetRunner] = [:]
        for (name, target) in targets {
            runners[name] = TargetRunner(
                name: name, target: target, batching: BatchingPolicy(maxMessages: 500, maxBytes: 1 << 20, maxDelay: .milliseconds(5)),
                lanes: 1, queueCapacity: 10_000, settings: settings, logger: quietLogger)
        }
        self.runners = runners
        settings.setRunners(runners)
        router.install(routes: [Route(name: "r", from: ["rabbit"], to: to)], runners: runners)
        self.source = source
        let context = SourceContext(name: "rabbit", source: source, router: router, logger: quietLogger)
        self.context = context
        let all = Array(runners.values)
        runnerTask = Task {
            await withTaskGroup(of: Void.self) { group in
                for runner in all { group.addTask { await runner.run() } }
            }
        }
        sourceTask = Task { try await source.run(context: context) }
    }

    /// The runtime's shutdown order: stop fetching, drain (bounded), close the source, then
    /// the targets.
    func shutdown(drain: Duration = .seconds(10)) async {
        context.stop()
        _ = try? await sourceTask.value
        let ledger = context.ledger
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await ledger.waitUntilDrained() }
            group.addTask { try? await Task.sleep(for: drain) }
            await group.next()
            group.cancelAll()
        }
        await source.close()
        for runner in runners.values {
            runner.flush()
            runner.closeQueues()
        }
        let deadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < deadline && runners.values.contains(where: { $0.queuedMessages > 0 }) {
            try? await Task.sleep(for: .milliseconds(10))
        }
        runnerTask.cancel()
        await runnerTask.value
    }
}

/// Waits until `condition` holds (checking every 10 ms), at most `limit`; records an issue when
/// it never does.
@discardableResult
func eventually(
    _ what: String, within limit: Duration = .seconds(20), sourceLocation: SourceLocation = #_sourceLocation, _ condition: () throws -> Bool
) async rethrows -> Bool {
    let deadline = ContinuousClock.now + limit
    while try !condition() {
        if ContinuousClock.now >= deadline {
            Issue.record("gave up waiting until \(what)", sourceLocation: sourceLocation)
            return false
        }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return true
}

extension Message {
    func headerText(_ name: String) -> String? { header(name).map { String(decoding: $0, as: UTF8.self) } }
}

/// `switchyard run -c CONFIG` (the debug build) with its output appended to `log`.
func startSwitchyard(_ config: URL, log: URL, environment: [String: String]? = nil, arguments: [String] = []) throws -> Process {
    let process = Process()
    process.executableURL = TestBed.root.appendingPathComponent(".build/debug/switchyard")
    process.arguments = ["run", "-c", config.path] + arguments
    if let environment { process.environment = environment }
    _ = FileManager.default.createFile(atPath: log.path, contents: nil)
    let handle = try FileHandle(forWritingTo: log)
    handle.seekToEndOfFile()
    process.standardOutput = handle
    process.standardError = handle
    process.standardInput = FileHandle.nullDevice
    try process.run()
    return process
}
