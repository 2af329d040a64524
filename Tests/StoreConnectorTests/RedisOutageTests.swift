import Foundation
import Testing
import SwitchyardCore

extension RedisTargetTests {
    /// The test bed's Redis keeps nothing on disk, so the outage is taken before the first
    /// write: the route waits (readiness 503) and writes everything once the server is back.
    @Test func whileRedisIsDownReadinessIsOffAndEverythingIsWrittenOnceItIsBack() async throws {
        let prefix = StoreBed.unique("outage")
        let httpPort = Int.random(in: 20_000...29_999)
        let document = """
            apiVersion: switchyard.dev/v1alpha1
            kind: Connector
            metadata: {name: redis-outage}
            spec:
              sources:
                - name: gen
                  generate: {count: 3000, rate: 2000, batchSize: 100}
              targets:
                - name: cache
                  redis: {url: "\(url)", key: "\(prefix):{{ offset }}", timeout: 1s}
              routes:
                - {from: [gen], to: [cache]}
              delivery:
                retry: {initialBackoff: 50ms, maxBackoff: 500ms}
              observability: {listen: "127.0.0.1:\(httpPort)"}
            """
        try StoreBed.services("stop", "redis")
        var restarted = false
        defer { if !restarted { try? StoreBed.services("start", "redis") } }
        let running = try StoreBed.RunningDocument(document)
        #expect(
            await StoreBed.poll(timeout: 10) { StoreBed.httpStatus(port: httpPort, path: "/readyz") == 503 },
            "readiness never went off: \(running.log.suffix(1500))")
        try StoreBed.services("start", "redis")
        restarted = true
        #expect(
            await StoreBed.poll(timeout: 15) { StoreBed.httpStatus(port: httpPort, path: "/readyz") == 200 || !running.process.isRunning })
        let status = await running.wait(timeout: 60)
        #expect(status == 0, "switchyard exited \(String(describing: status)): \(running.log.suffix(2000))")
        #expect(try cli("--scan", "--pattern", "\(prefix):*").split(separator: "\n").count == 3000)
    }
}
