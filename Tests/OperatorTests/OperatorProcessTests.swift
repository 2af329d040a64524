#if canImport(Glibc)
    import Glibc
#endif
import Foundation
import SwitchyardOperator
import Testing

/// The `switchyard` binary built next to this test executable (`SWITCHYARD_BIN` overrides).
func switchyardBinary() -> String? {
    if let path = ProcessInfo.processInfo.environment["SWITCHYARD_BIN"] { return path }
    guard let executable = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") else { return nil }
    var directory = URL(fileURLWithPath: executable).deletingLastPathComponent()
    // On Linux the test executable is DIR/switchyardPackageTests.xctest.
    if directory.lastPathComponent.hasSuffix(".xctest") { directory.deleteLastPathComponent() }
    let path = directory.appendingPathComponent("switchyard").path
    return FileManager.default.isExecutableFile(atPath: path) ? path : nil
}

/// A child process with its output in a file, spawned with posix_spawn and reaped by polling.
final class ChildProcess: @unchecked Sendable {
    let pid: pid_t
    let logPath: String
    var status: Int32?

    init(_ path: String, _ arguments: [String], logPath: String) throws {
        self.logPath = logPath
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var child: pid_t = 0
        let result = posix_spawn(&child, path, &actions, nil, argv, environ)
        guard result == 0 else { throw ConfigError("cannot start \(path): \(String(cString: strerror(result)))") }
        pid = child
    }

    /// The exit status once it exited, polling without blocking a thread.
    func exitStatus(within timeout: Duration) async throws -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            var raw: Int32 = 0
            if waitpid(pid, &raw, WNOHANG) == pid {
                status = (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
                return status
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    func stop() async {
        guard status == nil else { return }
        kill(pid, SIGKILL)
        _ = try? await exitStatus(within: .seconds(5))
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
}

/// A free loopback port (bound, read and released).
func freePort() -> Int {
    let socketFD = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(socketFD) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socketFD, $0, length) } }
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socketFD, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}

@Suite("switchyard operator, the command")
struct OperatorProcessTests {
    @Test("runs from a kubeconfig, reconciles, is ready, and on SIGTERM releases the Lease and exits 0")
    func command() async throws {
        let binary = try #require(switchyardBinary(), "the switchyard binary is not built next to the tests")
        try await withHarness(tokens: ["process-token"]) { harness in
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-operator-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let kubeconfig = directory + "/kubeconfig"
            try Data(
                """
                current-context: c
                clusters: [{name: k, cluster: {server: "\(harness.url)"}}]
                users: [{name: u, user: {token: process-token}}]
                contexts: [{name: c, context: {cluster: k, user: u}}]
                """.utf8
            ).write(to: URL(fileURLWithPath: kubeconfig))
            let port = freePort()
            harness.fake.create(.connector, "shop", connector("orders"))
            let child = try ChildProcess(
                binary,
                [
                    "operator", "--kubeconfig", kubeconfig, "--namespace", "shop", "--metrics-listen", "127.0.0.1:\(port)", "--identity",
                    "process-a",
                    "--lease-namespace", "switchyard-system", "--image", "registry.example/switchyard:9",
                ],
                logPath: directory + "/operator.log")
            do {
                try await eventually("the Deployment", timeout: .seconds(20)) { harness.fake.object(.deployment, "shop", "orders") != nil }
                #expect(
                    harness.fake.object(.lease, "switchyard-system", "switchyard-operator")?[path: ["spec", "holderIdentity"]]?.string
                        == "process-a")
                // Its own endpoints: ready (it reached the API server).
                let metricsClient = try KubeClient(
                    config: ClusterConfig(server: "http://127.0.0.1:\(port)"), logger: testLogger, requestTimeout: .seconds(5))
                harness.clients.append(metricsClient)
                try await eventually("/readyz answers 200") { (try? await metricsClient.request(.GET, "/readyz")) != nil }

                kill(child.pid, SIGTERM)
                let status = try await child.exitStatus(within: .seconds(15))
                #expect(status == 0, "\(child.log)")
                #expect(harness.fake.object(.lease, "switchyard-system", "switchyard-operator")?[path: ["spec", "holderIdentity"]] == nil)
            } catch {
                await child.stop()
                Issue.record("operator output:\n\(child.log)")
                throw error
            }
            await child.stop()
        }
    }

    @Test("an unusable kubeconfig is refused with exit status 2, naming the field")
    func badKubeconfig() async throws {
        let binary = try #require(switchyardBinary(), "the switchyard binary is not built next to the tests")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-operator-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let kubeconfig = directory + "/kubeconfig"
        try Data(
            "current-context: c\nclusters: [{name: k, cluster: {server: \"ftp://x\"}}]\ncontexts: [{name: c, context: {cluster: k}}]\n".utf8
        )
        .write(to: URL(fileURLWithPath: kubeconfig))
        let child = try ChildProcess(binary, ["operator", "--kubeconfig", kubeconfig], logPath: directory + "/operator.log")
        let status = try await child.exitStatus(within: .seconds(15))
        #expect(status == 2)
        #expect(child.log.contains("clusters[k].cluster.server"), "\(child.log)")
    }
}
