import BuiltinConnectors
import Dispatch
import Foundation
import SwitchyardConfig
import SwitchyardCore
import Testing
#if canImport(Glibc)
    import Glibc
#endif

/// Documents and the files they name come from whoever can edit a ConfigMap: what they may
/// cost is bounded, and going over a bound is an error naming the line, found quickly.
@Suite("Document limits")
struct DocumentLimitsTests {
    /// Runs `work` on a thread of its own and waits at most `seconds` for it; nil when it
    /// overstayed (the thread is left behind, blocked or busy).
    func within<T: Sendable>(_ seconds: Double, _ work: @escaping @Sendable () -> T) -> T? {
        let box = ResultBox<T>()
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            box.value = work()
            done.signal()
        }
        thread.stackSize = 8 << 20
        thread.start()
        guard done.wait(timeout: .now() + seconds) == .success else { return nil }
        return box.value
    }

    /// The issues of loading `text` with the real file reader, within `seconds`.
    func issues(_ text: String, environment: [String: String] = [:], seconds: Double = 5) throws -> [ConfigIssue] {
        let loader = DocumentLoader(
            registry: ConnectorRegistry([BuiltinConnectors.family]), interpolator: Interpolator(environment: environment))
        let started = ContinuousClock.now
        let result = try #require(within(seconds) { loader.load(text) }, "the loader did not answer within \(seconds) s")
        #expect(ContinuousClock.now - started < .seconds(seconds))
        switch result {
        case .success:
            Issue.record("the document should be rejected")
            throw LoadedAnyway()
        case .failure(let errors):
            return errors.issues
        }
    }

    /// Nine levels of nine aliases: 634 bytes that expand to 9^9 values.
    static let billionLaughs = """
        sources:
          - name: gen
            generate: {count: 1}
        targets:
          - name: out
            drop: {}
        routes:
          - {from: [gen], to: [out]}
        deployment:
          resources:
            a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
            b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
            c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
            d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
            e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
            f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
            g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
            h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
            i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
        """

    @Test func aliasBombIsRefusedQuicklyWithTheLineOfItsFirstAlias() throws {
        let found = try issues(Self.billionLaughs, seconds: 2)
        #expect(found.count == 1, "\(found)")
        let issue = try #require(found.first)
        #expect(issue.line == 12, "\(issue)")
        #expect(issue.message.contains("more than 100000 values"), "\(issue)")
        #expect(issue.message.contains("aliases"), "\(issue)")
    }

    @Test func anAliasUsedAsAKeyIsRefusedBeforeTheParserComparesIt() throws {
        let text = Self.billionLaughs + "\n    ? *i\n    : x\n"
        let found = try issues(text, seconds: 2)
        #expect(found.count == 1, "\(found)")
        #expect(found.first?.line == 20, "\(found)")
        #expect(found.first?.message.contains("mapping key must be plain text") == true, "\(found)")
        let inline = try issues("sources: &s [x]\n*s : 1\n", seconds: 2)
        #expect(inline.first?.line == 2, "\(inline)")
        let flowKey = try issues("sources: [x]\n[a, b]: 1\n", seconds: 2)
        #expect(flowKey.first?.line == 2, "\(flowKey)")
    }

    @Test func aFewAliasesStillWork() throws {
        let document = try loadValid(
            """
            sources:
              - name: one
                generate: &generator {count: 5, rate: 100}
              - name: two
                generate: *generator
            targets:
              - name: out
                drop: {}
            routes:
              - {from: [one, two], to: [out]}
            """)
        #expect(document.sources.map { $0.options.int("count") } == [5, 5])
        // A question mark, a star or a bracket inside text is not a key or an alias.
        _ = try loadValid(
            minimalSpec + "\n    where: {channel: \"orders*\"}\nobservability: {listen: \"127.0.0.1:9090\"}\n# is it? *maybe [x]: y\n")
    }

    @Test func deepNestingIsRefusedWithItsLine() throws {
        let deep = String(repeating: "[", count: 70) + String(repeating: "]", count: 70)
        let found = try issues(minimalSpec + "\ndeployment: {resources: {x: \(deep)}}\n")
        #expect(found.count == 1, "\(found)")
        #expect(found.first?.line == 12, "\(found)")
        #expect(found.first?.message.contains("nested more than 64 levels") == true, "\(found)")
        // Deeper than the YAML parser itself allows: refused, not a crash.
        let deeper = String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000)
        let parserLimit = try issues(minimalSpec + "\ndeployment: {resources: {x: \(deeper)}}\n")
        #expect(parserLimit.first?.line == 12, "\(parserLimit)")
        // Block style, one level per line.
        var block = "deployment:\n  resources:\n"
        for level in 0..<80 { block += String(repeating: "  ", count: level + 2) + "k:\n" }
        let blockIssues = try issues(minimalSpec + "\n" + block)
        #expect(blockIssues.first?.message.contains("nested more than 64 levels") == true, "\(blockIssues)")
    }

    @Test func anOversizedDocumentIsRefusedWithTheLineWhereItCrossesTheLimit() throws {
        var text = minimalSpec + "\ndeployment:\n  resources:\n"
        var line = 14
        while text.utf8.count <= 1 << 20 {
            text += "    k\(line): \"\(String(repeating: "x", count: 100))\"\n"
            line += 1
        }
        let found = try issues(text)
        #expect(found.count == 1, "\(found)")
        let issue = try #require(found.first)
        #expect(issue.message.contains("at most 1048576 (1 MiB)"), "\(issue)")
        #expect(issue.line == line - 1, "\(issue)")
    }

    @Test func tooManyValuesWithoutAliasesAreRefusedToo() throws {
        var text = minimalSpec + "\ndeployment:\n  resources:\n    x: ["
        text += String(repeating: "1,", count: 110_000) + "1]\n"
        let found = try issues(text)
        #expect(found.first?.message.contains("more than 100000 values") == true, "\(found)")
        #expect(found.first?.line == 14, "\(found)")
    }

    // MARK: ${file:PATH}

    func document(password reference: String) -> String {
        minimalSpec + "\ndeployment: {image: \"\(reference)\"}\n"
    }

    @Test func fileReferencesToDevicesAreRefused() throws {
        let found = try issues(document(password: "${file:/dev/zero}"), seconds: 5)
        #expect(found.count == 1, "\(found)")
        #expect(found.first?.path == "spec.deployment.image")
        #expect(found.first?.line == 12)
        #expect(found.first?.message.contains("'/dev/zero' is a character device, not a regular file") == true, "\(found)")
        let directory = try issues(document(password: "${file:/tmp}"))
        #expect(directory.first?.message.contains("is a directory") == true, "\(directory)")
    }

    @Test func fileReferencesToAFIFOAreRefusedWithoutWaitingForAWriter() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-fifo-\(UUID().uuidString)").path
        #expect(mkfifo(path, 0o600) == 0)
        defer { unlink(path) }
        let found = try issues(document(password: "${file:\(path)}"), seconds: 5)
        #expect(found.first?.message.contains("is a FIFO (named pipe), not a regular file") == true, "\(found)")
    }

    @Test func fileReferencesLargerThan256KiBAreRefusedAndSmallerOnesRead() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-files-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let large = directory.appendingPathComponent("large")
        try Data(repeating: UInt8(ascii: "s"), count: (256 << 10) + 1).write(to: large)
        let found = try issues(document(password: "${file:\(large.path)}"))
        #expect(found.first?.message.contains("is larger than 256 KiB") == true, "\(found)")
        #expect(found.first?.message.contains("sss") == false, "content is never shown")
        let exact = directory.appendingPathComponent("exact")
        try Data(repeating: UInt8(ascii: "s"), count: 256 << 10).write(to: exact)
        let loader = DocumentLoader(registry: ConnectorRegistry([BuiltinConnectors.family]), interpolator: Interpolator(environment: [:]))
        guard case .success(let loaded) = loader.load(document(password: "${file:\(exact.path)}")) else {
            Issue.record("a file of exactly 256 KiB is read")
            return
        }
        #expect(loaded.spec.object("deployment")?.string("image")?.utf8.count == 256 << 10)
        // Many files under the limit each still add up to a bound for the document.
        var many = minimalSpec + "\ndeployment:\n  nodeSelector:\n"
        for index in 0..<20 { many += "    k\(index): \"${file:\(exact.path)}\"\n" }
        let total = try issues(many)
        #expect(total.count == 1, "\(total)")
        #expect(total.first?.message.contains("insert more than 4 MiB in all") == true, "\(total)")
    }

    @Test func aDocumentThatIsNotARegularFileIsNotRead() throws {
        #expect(Interpolator.readDocument("/dev/zero") == .failure(.notRegular(path: "/dev/zero", kind: "a character device")))
        if case .failure(let failure) = Interpolator.readDocument("/nonexistent/connector.yaml") {
            #expect(failure.description.contains("cannot open '/nonexistent/connector.yaml'"))
        } else {
            Issue.record("a missing document is an error")
        }
    }
}

final class ResultBox<T>: @unchecked Sendable {
    var value: T?
}
