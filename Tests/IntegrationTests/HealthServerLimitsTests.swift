import Foundation
import Testing
#if canImport(Glibc)
    import Glibc
#endif

/// The observability port listens on every interface in a pod: a client that misbehaves on
/// it must not be able to grow the process or hold connections open.
@Suite(.serialized)
struct HealthServerLimitsTests {
    func startRuntime(port: Int, directory: URL) throws -> SwitchyardProcess {
        let config = directory.appendingPathComponent("connector.yaml")
        try """
        sources:
          - name: ticks
            generate: {rate: 200}
        targets:
          - name: sink
            drop: {}
        routes:
          - {from: [ticks], to: [sink]}
        observability: {listen: "127.0.0.1:\(port)", logFormat: json}
        """.write(to: config, atomically: true, encoding: .utf8)
        let process = try SwitchyardProcess(arguments: ["run", "-c", config.path], directory: directory)
        #expect(eventually(timeout: 20) { HTTP.get(port: port, path: "/livez")?.status == 200 }, "\(process.log)")
        return process
    }

    /// One client pipelines `GET /metrics` as fast as it can on one connection and never reads
    /// an answer. The process's resident memory (sampled from /proc every 100 ms) must stay
    /// within 64 MiB of where it started, and other clients are still answered.
    @Test func pipelinedScrapesThatAreNeverReadKeepMemoryBounded() throws {
        let directory = Paths.temporaryDirectory()
        let port = HTTP.freePort()
        let process = try startRuntime(port: port, directory: directory)
        defer { process.signal(SIGKILL) }
        for _ in 0..<5 { _ = HTTP.get(port: port, path: "/metrics") }
        let baseline = try #require(residentBytes(pid: process.pid))

        func attacker() throws -> Int32 {
            let fd = try #require(RawClient.connect(port: port, receiveBuffer: 4096))
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            return fd
        }
        var fd = try attacker()
        defer { close(fd) }
        let request = Array(String(repeating: "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", count: 200).utf8)
        var peak = baseline
        var sent = 0
        var connections = 1
        var nextSample = Date()
        let end = Date().addingTimeInterval(12)
        while Date() < end {
            let count = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if count > 0 {
                sent += count
            } else if count < 0 && errno != EAGAIN && errno != EWOULDBLOCK {
                // The server closed the connection: the attacker comes back at once.
                close(fd)
                fd = try attacker()
                connections += 1
            } else {
                usleep(1000)
            }
            if Date() >= nextSample {
                if let rss = residentBytes(pid: process.pid) { peak = max(peak, rss) }
                nextSample = Date().addingTimeInterval(0.1)
            }
        }
        let growth = peak - baseline
        #expect(
            growth < 64 << 20,
            "resident memory grew by \(growth >> 20) MiB (from \(baseline >> 20) MiB) while one client pipelined \(sent / 42) unread scrapes over \(connections) connections"
        )
        #expect(HTTP.get(port: port, path: "/livez")?.status == 200, "another client is still answered")
        print(
            "pipelining client: \(sent / 42) requests sent over \(connections) connections in 12 s; resident memory \(baseline >> 20) MiB before, \(peak >> 20) MiB at most"
        )
        stopCleanly(process)
    }

    /// Requests whose headers never end are closed once the header timeout (10 s) passes.
    @Test func halfSentRequestsAreClosedAfterTheHeaderTimeout() throws {
        let directory = Paths.temporaryDirectory()
        let port = HTTP.freePort()
        let process = try startRuntime(port: port, directory: directory)
        defer { process.signal(SIGKILL) }
        var sockets: [Int32] = []
        defer { sockets.forEach { close($0) } }
        for _ in 0..<40 {
            let fd = try #require(RawClient.connect(port: port, receiveBuffer: nil))
            let partial = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
            _ = partial.withCString { send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
            sockets.append(fd)
        }
        let started = Date()
        // Still open well before the timeout: the timeout does not cut honest clients short.
        usleep(2_000_000)
        #expect(sockets.filter { RawClient.isClosed($0) }.isEmpty)
        var open = Set(sockets)
        _ = eventually(timeout: 25) {
            open = open.filter { !RawClient.isClosed($0) }
            return open.isEmpty
        }
        let waited = Date().timeIntervalSince(started)
        #expect(open.isEmpty, "\(open.count) of \(sockets.count) half-sent requests still open after \(Int(waited)) s")
        #expect(waited >= 8, "closed after \(waited) s, before the header timeout")
        #expect(HTTP.get(port: port, path: "/livez")?.status == 200)
        stopCleanly(process)
    }

    /// Connections beyond the cap (64) are closed at once; those within it are served.
    @Test func connectionsBeyondTheCapAreClosed() throws {
        let directory = Paths.temporaryDirectory()
        let port = HTTP.freePort()
        let process = try startRuntime(port: port, directory: directory)
        defer { process.signal(SIGKILL) }
        var sockets: [Int32] = []
        defer { sockets.forEach { close($0) } }
        for _ in 0..<100 {
            sockets.append(try #require(RawClient.connect(port: port, receiveBuffer: nil)))
        }
        var closed = 0
        _ = eventually(timeout: 5) {
            closed = sockets.filter { RawClient.isClosed($0) }.count
            return closed >= 36
        }
        #expect(closed >= 36 && closed <= 40, "\(closed) of 100 idle connections were closed")
        sockets.forEach { close($0) }
        sockets = []
        #expect(eventually(timeout: 10) { HTTP.get(port: port, path: "/livez")?.status == 200 }, "served again once the others left")
        stopCleanly(process)
    }

    func stopCleanly(_ process: SwitchyardProcess, sourceLocation: SourceLocation = #_sourceLocation) {
        process.signal(SIGTERM)
        #expect(process.waitForExit(timeout: 30) == 0, "\(process.log)", sourceLocation: sourceLocation)
    }

    /// `VmRSS` of a process, in bytes.
    func residentBytes(pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if fields.count >= 2, let kib = Int(fields[1]) { return kib * 1024 }
        }
        return nil
    }
}
