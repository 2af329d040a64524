#if canImport(Glibc)
    import Glibc
#endif
import Foundation

/// The test bed as the test modules see it: the repository, the addresses that
/// `scripts/services` writes to `.state/services.env`, and the script itself.
public enum ServicesFile {
    /// The repository root (this file is Tests/TestBedSupport/ServicesFile.swift).
    public static let root: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The test bed is not running, or lacks a server; the text says what to run.
    public struct Missing: Error, CustomStringConvertible {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    /// Every `KEY=value` line of `.state/services.env`, read afresh (a restarted server may
    /// have a new address or key).
    public static func environment() throws(Missing) -> [String: String] {
        let path = root.appendingPathComponent(".state/services.env").path
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw Missing("the test bed is not running: \(path) is missing; run `scripts/services start`")
        }
        var values: [String: String] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            values[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        return values
    }

    /// One non-empty value of `.state/services.env`.
    public static func value(_ name: String) throws(Missing) -> String {
        guard let value = try environment()[name], !value.isEmpty else {
            throw Missing("\(name) is not in .state/services.env; run `scripts/services start`")
        }
        return value
    }

    /// Runs `scripts/services ARGUMENTS` (stop or start servers of the test bed) with its output
    /// discarded: a server it starts inherits the descriptors, so a pipe would never reach end
    /// of file. Spawned and reaped with posix_spawn and waitpid: Foundation's Process can miss
    /// the exit of a child whose grandchildren keep running.
    public static func services(_ arguments: [String]) throws(Missing) {
        let script = root.appendingPathComponent("scripts/services").path
        let command = ([script] + arguments).joined(separator: " ") + " >/dev/null 2>&1 </dev/null"
        let words: [String] = ["/bin/sh", "-c", command]
        var cArguments: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
        defer { for pointer in cArguments { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, "/bin/sh", nil, nil, &cArguments, environ)
        guard spawned == 0 else { throw Missing("cannot start scripts/services: error \(spawned)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { return }  // reaped elsewhere: the status is unknown
        }
        let exitCode = (status >> 8) & 0xFF
        if exitCode != 0 { throw Missing("scripts/services \(arguments.joined(separator: " ")) exited \(exitCode)") }
    }
}
