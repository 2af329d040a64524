import Foundation
import Testing
#if canImport(Glibc)
    import Glibc
#endif

/// A directory laid out like a Kubernetes ConfigMap volume, updated the way the kubelet does it:
/// `..data -> ..<timestamp>` holds the real files, `connector.yaml -> ..data/connector.yaml`.
struct ConfigMapVolume {
    let directory: URL
    var generation = 0

    /// The path the runtime is given; it never changes.
    var file: URL { directory.appendingPathComponent("connector.yaml") }

    init(directory: URL, initial: String) throws {
        self.directory = directory
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let first = try writeTimestamped(initial)
        try FileManager.default.createSymbolicLink(atPath: directory.appendingPathComponent("..data").path, withDestinationPath: first)
        try FileManager.default.createSymbolicLink(atPath: file.path, withDestinationPath: "..data/connector.yaml")
    }

    /// The kubelet's update: a new timestamped directory, `..data_tmp -> ..NEW`, an atomic
    /// rename of `..data_tmp` over `..data`, then the old directory removed.
    mutating func update(_ text: String) throws {
        let data = directory.appendingPathComponent("..data").path
        let old = try FileManager.default.destinationOfSymbolicLink(atPath: data)
        let new = try writeTimestamped(text)
        let temporary = directory.appendingPathComponent("..data_tmp").path
        try FileManager.default.createSymbolicLink(atPath: temporary, withDestinationPath: new)
        guard rename(temporary, data) == 0 else { throw SwapFailed(errno: errno) }
        try FileManager.default.removeItem(at: directory.appendingPathComponent(old))
    }

    /// The directory the current `..data` points to.
    var current: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: directory.appendingPathComponent("..data").path)) ?? ""
    }

    private mutating func writeTimestamped(_ text: String) throws -> String {
        generation += 1
        let name = "..2026_12_01_22_00_\(10 + generation).\(123_456_789 + generation)"
        let target = directory.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: target, withIntermediateDirectories: false)
        try text.write(to: target.appendingPathComponent("connector.yaml"), atomically: false, encoding: .utf8)
        return name
    }
}

struct SwapFailed: Error {
    let errno: Int32
}

@Suite(.serialized)
struct ConfigMapReloadTests {
    func document(output: URL, port: Int, channel: String, extra: String = "") -> String {
        """
        sources:
          - name: ticks
            generate: {rate: 200, channel: "\(channel)"\(extra)}
        targets:
          - name: archive
            file: {path: "\(output.path)"}
        routes:
          - {from: [ticks], to: [archive]}
        observability: {listen: "127.0.0.1:\(port)", logFormat: json}
        """
    }

    func metrics(_ port: Int) -> String { HTTP.get(port: port, path: "/metrics")?.body ?? "" }

    func count(_ output: URL, channel: String) -> Int {
        readNDJSON(output).filter { $0["channel"] as? String == channel }.count
    }

    @Test func aConfigMapSymlinkSwapIsAppliedAndAnInvalidSwapIsRejected() throws {
        let directory = Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let output = directory.appendingPathComponent("out.ndjson")
        let port = HTTP.freePort()
        var volume = try ConfigMapVolume(
            directory: directory.appendingPathComponent("config"), initial: document(output: output, port: port, channel: "first"))
        let process = try SwitchyardProcess(arguments: ["run", "-c", volume.file.path], directory: directory)
        defer { process.signal(SIGKILL) }

        #expect(eventually(timeout: 30) { count(output, channel: "first") > 0 }, "\(process.log)")
        #expect(eventually(timeout: 30) { metrics(port).contains("switchyard_config_generation 1") }, "\(process.log)")

        // A valid update through the swap: the changed source is replaced, the generation bumped.
        try volume.update(document(output: output, port: port, channel: "second"))
        #expect(eventually(timeout: 30) { count(output, channel: "second") > 0 }, "\(process.log)")
        #expect(eventually(timeout: 30) { metrics(port).contains("switchyard_config_generation 2") }, "\(metrics(port))")
        #expect(metrics(port).contains(#"switchyard_config_reloads_total{result="applied"} 1"#), "\(metrics(port))")
        let applied = try #require(process.logEntries(message: "new document applied").first, "\(process.log)")
        #expect(applied["sourcesReplaced"] as? String == "ticks")
        #expect(applied["generation"] as? String == "2")
        let changed = try #require(process.logEntries(message: "document changed; validating").last)
        #expect((changed["resolved"] as? String)?.hasSuffix("\(volume.current)/connector.yaml") == true, "\(changed)")

        // An invalid update through the swap: rejected with the path of the problem; the old
        // pipeline keeps writing, stays ready, and the generation stays.
        try volume.update(document(output: output, port: port, channel: "third", extra: ", bogusOption: 1"))
        #expect(
            eventually(timeout: 30) { !process.logEntries(message: "new document rejected; the running document stays in force").isEmpty },
            "\(process.log)")
        let rejected = try #require(process.logEntries(message: "new document rejected; the running document stays in force").first)
        #expect(rejected["file"] as? String == volume.file.path, "\(rejected)")
        #expect((rejected["errors"] as? String)?.contains("sources[0].generate.bogusOption") == true, "\(rejected)")
        #expect(rejected["generation"] as? String == "2", "\(rejected)")
        let page = metrics(port)
        #expect(page.contains("switchyard_config_generation 2"), "\(page)")
        #expect(page.contains(#"switchyard_config_reloads_total{result="rejected"} 1"#), "\(page)")
        #expect(page.contains(#"switchyard_config_reloads_total{result="applied"} 1"#), "\(page)")
        let before = count(output, channel: "second")
        #expect(eventually(timeout: 30) { count(output, channel: "second") > before + 50 }, "the old pipeline should still be writing")
        #expect(count(output, channel: "third") == 0)
        #expect(HTTP.get(port: port, path: "/readyz")?.status == 200)
        #expect(process.logEntries(message: "new document applied").count == 1)

        // The watcher is not stuck on the rejected content: the next valid swap applies.
        try volume.update(document(output: output, port: port, channel: "fourth"))
        #expect(eventually(timeout: 30) { count(output, channel: "fourth") > 0 }, "\(process.log)")
        #expect(eventually(timeout: 30) { metrics(port).contains("switchyard_config_generation 3") }, "\(metrics(port))")
        #expect(metrics(port).contains(#"switchyard_config_reloads_total{result="rejected"} 1"#))

        process.signal(SIGTERM)
        #expect(process.waitForExit(timeout: 30) == 0, "\(process.log)")
    }
}
