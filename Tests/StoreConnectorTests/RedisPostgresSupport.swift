import Foundation
import TestBedSupport
import Logging
import Testing
import SwitchyardCore

/// Shared helpers of the Redis and PostgreSQL target tests (names prefixed so that they cannot
/// clash with other files of this test target).
enum StoreBed {
    static let repository: URL = {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url }
        }
        fatalError("Package.swift not found above \(#filePath)")
    }()

    struct Missing: Error, CustomStringConvertible {
        var description: String
    }

    /// The test bed's addresses from `.state/services.env`.
    static func environment() throws -> [String: String] {
        do { return try ServicesFile.environment() } catch { throw Missing(description: error.description) }
    }

    static func value(_ name: String) throws -> String {
        do { return try ServicesFile.value(name) } catch { throw Missing(description: error.description) }
    }

    static let quietLogger = Logger(label: "switchyard.store-tests", factory: { _ in SwiftLogNoOpLogHandler() })

    /// A document node for option objects written in tests.
    indirect enum Node {
        case text(String)
        case plain(String)
        case object([(String, Node)])
        case list([Node])

        var config: ConfigNode {
            switch self {
            case .text(let text): ConfigNode(.scalar(.init(text: text, quoted: true)), line: 1)
            case .plain(let text): ConfigNode(.scalar(.init(text: text, quoted: false)), line: 1)
            case .object(let entries): ConfigNode(.mapping(entries.map { .init(key: $0.0, keyLine: 1, value: $0.1.config) }), line: 1)
            case .list(let items): ConfigNode(.sequence(items.map(\.config)), line: 1)
            }
        }
    }

    /// Validates a target entry `{name: t, <kind>: options}` at `spec.targets[0]` as the
    /// document loader does; returns the issues.
    static func issues(_ kind: TargetKind, _ options: [(String, Node)]) -> [ConfigIssue] {
        var decoder = OptionDecoder(connectorKinds: [.target: [(kind.kind, kind.options, kind.validate)]])
        let entry = Node.object([("name", .text("t")), (kind.kind, .object(options))])
        _ = decoder.decode(entry.config, as: .connector(.target), path: "spec.targets[0]")
        return decoder.issues
    }

    /// Builds a target from options, failing the test when they do not validate.
    static func make(_ kind: TargetKind, _ options: [(String, Node)], name: String = "t") throws -> any Target {
        var decoder = OptionDecoder(connectorKinds: [.target: [(kind.kind, kind.options, kind.validate)]])
        let entry = Node.object([("name", .text(name)), (kind.kind, .object(options))])
        guard case .connector(let connector)? = decoder.decode(entry.config, as: .connector(.target), path: "spec.targets[0]") else {
            throw Missing(description: "options did not validate: \(decoder.issues)")
        }
        return try kind.make(ConnectorSetup(name: name, options: connector.options, logger: quietLogger, memoryLimit: 64 << 20))
    }

    /// Runs a program and returns its standard output (trimmed) and exit status.
    @discardableResult
    static func run(_ program: String, _ arguments: [String], input: String? = nil, environment: [String: String] = [:]) throws -> (
        output: String, status: Int32, error: String
    ) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program.hasPrefix("/") ? program : "/usr/bin/env")
        process.arguments = program.hasPrefix("/") ? arguments : [program] + arguments
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        process.environment = env
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let inPipe = Pipe()
        process.standardInput = inPipe
        try process.run()
        if let input { inPipe.fileHandleForWriting.write(Data(input.utf8)) }
        try inPipe.fileHandleForWriting.close()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errorData = err.fileHandleForReading.readDataToEndOfFile()
        let status = exitStatus(process) ?? 0
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return (text, status, String(decoding: errorData, as: UTF8.self))
    }

    /// Runs `switchyard ARGUMENTS` to its end, waiting with sleeps so that no thread of the
    /// cooperative pool (which other suites' async tests need) is held: its standard output
    /// (trimmed), exit status and standard error.
    static func switchyard(_ arguments: [String], timeout: Duration = .seconds(120)) async throws -> (
        output: String, status: Int32, error: String
    ) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(unique("switchyard-command"))
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let out = directory.appendingPathComponent("out")
        let err = directory.appendingPathComponent("err")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let deadline = ContinuousClock.now + timeout
        while process.isRunning && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        if process.isRunning {
            process.terminate()
            while process.isRunning { try await Task.sleep(for: .milliseconds(20)) }
        }
        let output = ((try? String(contentsOf: out, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        return (output, exitStatus(process) ?? -1, (try? String(contentsOf: err, encoding: .utf8)) ?? "")
    }

    /// A name no other test run uses.
    static func unique(_ prefix: String) -> String {
        "\(prefix)_\(UInt32.random(in: 0...UInt32.max))_\(ProcessInfo.processInfo.processIdentifier)"
    }

    static func message(key: String? = nil, value: String, offset: Int64 = 0, partition: Int32 = 0) -> Message {
        Message(
            key: key.map { Array($0.utf8) }, value: Array(value.utf8), channel: "orders", timestamp: 1_700_000_000_000,
            partition: partition, offset: offset)
    }

    /// The built `switchyard` binary.
    static var binary: String {
        if let path = ProcessInfo.processInfo.environment["SWITCHYARD_BIN"] { return path }
        return repository.appendingPathComponent(".build/debug/switchyard").path
    }

    /// Runs `switchyard run` on `document` until it exits (a finite generator); returns its
    /// exit status and standard error.
    /// Waits without holding a thread of the cooperative pool (the other suites' async tests
    /// run on its two threads).
    static func runDocument(_ document: String, timeout: TimeInterval = 60) async throws -> (status: Int32, log: String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(unique("switchyard-store"))
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("doc.yaml")
        try document.write(to: file, atomically: true, encoding: .utf8)
        let logURL = directory.appendingPathComponent("stderr.log")
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["run", "-c", file.path]
        process.standardError = try FileHandle(forWritingTo: logURL)
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
            return (-1, (try? String(contentsOf: logURL, encoding: .utf8)) ?? "")
        }
        return (process.terminationStatus, (try? String(contentsOf: logURL, encoding: .utf8)) ?? "")
    }

    /// A `switchyard run` started in the background.
    final class RunningDocument {
        let process = Process()
        let directory: URL
        let logURL: URL

        init(_ document: String) throws {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent(StoreBed.unique("switchyard-store"))
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let file = directory.appendingPathComponent("doc.yaml")
            try document.write(to: file, atomically: true, encoding: .utf8)
            logURL = directory.appendingPathComponent("stderr.log")
            _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
            process.executableURL = URL(fileURLWithPath: StoreBed.binary)
            process.arguments = ["run", "-c", file.path]
            process.standardError = try FileHandle(forWritingTo: logURL)
            process.standardOutput = FileHandle.nullDevice
            try process.run()
        }

        deinit {
            if process.isRunning { process.terminate() }
            try? FileManager.default.removeItem(at: directory)
        }

        var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

        /// Waits for the exit; nil (after killing the process) when `timeout` passes first.
        func wait(timeout: TimeInterval) async -> Int32? {
            let deadline = Date().addingTimeInterval(timeout)
            while process.isRunning && Date() < deadline { try? await Task.sleep(for: .milliseconds(20)) }
            if process.isRunning {
                process.terminate()
                process.waitUntilExit()
                return nil
            }
            return process.terminationStatus
        }
    }

    /// The HTTP status of `GET http://127.0.0.1:port/path` (0 when nothing answers).
    static func httpStatus(port: Int, path: String) -> Int {
        let result = try? run("curl", ["-s", "-o", "/dev/null", "-m", "2", "-w", "%{http_code}", "http://127.0.0.1:\(port)\(path)"])
        return Int(result?.output ?? "") ?? 0
    }

    /// Polls `condition` every 50 ms for at most `timeout` seconds, sleeping without holding a
    /// thread of the cooperative pool.
    static func poll(timeout: TimeInterval, _ condition: () -> Bool) async -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return condition()
    }

    /// Runs `scripts/services ARGS` (stop or start one server of the test bed).
    static func services(_ arguments: String...) throws {
        do { try ServicesFile.services(arguments) } catch { throw Missing(description: error.description) }
    }
}
