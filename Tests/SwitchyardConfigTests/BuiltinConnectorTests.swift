import Foundation
import Logging
import Synchronization
import Testing
@testable import BuiltinConnectors
@testable import SwitchyardConfig
@testable import SwitchyardCore

let quiet = Logger(label: "switchyard.tests", factory: { _ in SwiftLogNoOpLogHandler() })

/// Builds the connectors of a document the way the runtime does: through the registry.
struct Built {
    let document: ConnectorDocument
    let registry = ConnectorRegistry([BuiltinConnectors.family])

    init(_ yaml: String) throws {
        document = try loadValid(yaml)
    }

    func target(_ index: Int = 0) throws -> any Target {
        let entry = document.targets[index]
        let kind = try #require(registry.target(entry.kind))
        return try kind.make(ConnectorSetup(name: entry.name, options: entry.options, logger: quiet, memoryLimit: 1 << 20))
    }

    func source(_ index: Int = 0) throws -> any Source {
        let entry = document.sources[index]
        let kind = try #require(registry.source(entry.kind))
        return try kind.make(ConnectorSetup(name: entry.name, options: entry.options, logger: quiet, memoryLimit: 1 << 20))
    }
}

func document(target: String, source: String = "generate: {count: 10}") -> String {
    """
    sources:
      - name: gen
        \(source)
    targets:
      - name: out
        \(target)
    routes:
      - {from: [gen], to: [out]}
    """
}

/// Records what a router hands it, and acknowledgements.
final class CollectingTarget: Target {
    let log = Mutex<[Message]>([])
    func write(_ messages: [Message]) async throws -> WriteResult {
        log.withLock { $0 += messages }
        return .allWritten
    }
    var messages: [Message] { log.withLock { $0 } }
}

@Suite("Built-in connectors")
struct BuiltinConnectorTests {
    @Test func theFamilyListsItsKinds() {
        let registry = ConnectorRegistry([BuiltinConnectors.family])
        #expect(registry.source("generate") != nil)
        #expect(registry.target("file") != nil)
        #expect(registry.target("stdout") != nil)
        #expect(registry.target("drop") != nil)
        #expect(registry.source("file") == nil)
    }

    @Test func theFileTargetAppendsOneJSONLinePerMessage() async throws {
        let path = NSTemporaryDirectory() + "switchyard-test-\(UUID().uuidString).ndjson"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let target = try Built(document(target: "file: {path: \"\(path)\", fsync: false}")).target()
        try await target.open()
        let messages = [
            Message(
                key: Array("k1".utf8), value: Array("he said \"hi\"\n\\ \u{01}".utf8), headers: [Header("type", "order")],
                channel: "orders", timestamp: 1_700_000_000_000, partition: 2, offset: 7),
            Message(
                key: nil, value: [0xFF, 0x00, 0xFE], headers: [Header(name: "bin", value: [0xC3])], channel: "raw", partition: 0, offset: 8),
        ]
        let result = try await target.write(messages)
        #expect(result.failures.isEmpty)
        await target.close()
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 3)
        #expect(lines.last == "")
        let first = try #require(JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        #expect(first["key"] as? String == "k1")
        #expect(first["value"] as? String == "he said \"hi\"\n\\ \u{01}")
        #expect(first["channel"] as? String == "orders")
        #expect(first["partition"] as? Int == 2)
        #expect(first["offset"] as? Int == 7)
        #expect(first["timestamp"] as? Int == 1_700_000_000_000)
        #expect((first["headers"] as? [[String]]) == [["type", "order"]])
        let second = try #require(JSONSerialization.jsonObject(with: Data(lines[1].utf8)) as? [String: Any])
        #expect(second["key"] is NSNull)
        #expect(second["value"] == nil)
        #expect(second["valueBase64"] as? String == Data([0xFF, 0x00, 0xFE]).base64EncodedString())
        let header = try #require((second["headers"] as? [[Any]])?.first)
        #expect(header.first as? String == "bin")
        #expect((header.last as? [String: String])?["base64"] == Data([0xC3]).base64EncodedString())
    }

    @Test func theFileTargetReportsAnUnwritableDirectoryAsTargetDown() async throws {
        let target = try Built(document(target: "file: {path: /nonexistent-dir-for-switchyard/x.ndjson}")).target()
        do {
            try await target.open()
            Issue.record("open should fail")
        } catch let error as ConnectorError {
            #expect(error.kind == .targetDown)
            #expect(error.message.contains("/nonexistent-dir-for-switchyard/x.ndjson"))
        }
    }

    @Test func injectedFailuresHitEveryNthMessageOverTheTargetsLifetime() async throws {
        let target = try Built(document(target: "drop: {failEvery: 3}")).target()
        let batch = (0..<4).map { Message(value: [], partition: 1, offset: Int64($0)) }
        let first = try await target.write(batch)
        #expect(first.failures.map(\.index) == [2])
        #expect(first.failures.allSatisfy { $0.error.kind == .permanent })
        #expect(first.failures.first?.error.message.contains("offset 2") == true)
        // Counting goes on over the lifetime: this batch holds messages 5 to 8, so 6 (index 1) fails.
        let second = try await target.write(batch)
        #expect(second.failures.map(\.index) == [1])
    }

    @Test func injectedRetriableFailuresAreRetriable() async throws {
        let target = try Built(document(target: "drop: {failEvery: 2, failure: retriable}")).target()
        let result = try await target.write((0..<4).map { Message(value: [], offset: Int64($0)) })
        #expect(result.failures.map(\.index) == [1, 3])
        #expect(result.failures.allSatisfy { $0.error.kind == .retriable })
    }

    @Test func injectedTargetFailuresFailTheWholeBatch() async throws {
        let target = try Built(document(target: "drop: {failEvery: 2, failure: target}")).target()
        await #expect(throws: ConnectorError.self) {
            _ = try await target.write((0..<4).map { Message(value: [], offset: Int64($0)) })
        }
    }

    @Test func theFileTargetSkipsInjectedFailuresAndWritesTheRest() async throws {
        let path = NSTemporaryDirectory() + "switchyard-test-\(UUID().uuidString).ndjson"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let target = try Built(document(target: "file: {path: \"\(path)\", fsync: false, failEvery: 2}")).target()
        try await target.open()
        let result = try await target.write((0..<4).map { Message(value: Array("v\($0)".utf8), offset: Int64($0)) })
        await target.close()
        #expect(result.failures.map(\.index) == [1, 3])
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.split(separator: "\n").map { $0.contains("\"v0\"") || $0.contains("\"v2\"") } == [true, true])
    }

    @Test func theGeneratorProducesCountMessagesPerShardFromTemplatesAndIsAcknowledged() async throws {
        let built = try Built(
            document(
                target: "drop: {}",
                source: """
                    generate:
                          count: 7
                          shards: 2
                          batchSize: 2
                          key: "user-{{ partition }}-{{ offset }}"
                          value: '{"n": {{ offset }}}'
                          channel: "orders.{{ partition }}"
                          headers: {type: order}
                    """))
        let source = try built.source()
        let collected = CollectingTarget()
        let settings = DeliverySettings(retry: RetryPolicy(initialBackoff: .milliseconds(1), maxBackoff: .milliseconds(2)), deadLetter: nil)
        let runner = TargetRunner(
            name: "out", target: collected, batching: BatchingPolicy(maxMessages: 100, maxBytes: 1 << 20, maxDelay: .milliseconds(1)),
            lanes: 1, queueCapacity: 100, settings: settings, logger: quiet)
        settings.setRunners(["out": runner])
        let router = Router(budget: ByteBudget(limit: 1 << 20), logger: quiet)
        router.install(routes: built.document.routes, runners: ["out": runner])
        let context = SourceContext(name: "gen", source: source, router: router, logger: quiet)
        let running = Task { await runner.run() }
        try await source.run(context: context)
        await context.ledger.waitUntilDrained()
        runner.closeQueues()
        await running.value
        let messages = collected.messages
        #expect(messages.count == 7)
        // Batches of 2 alternate between the shards: shard 0 gets 4 messages, shard 1 gets 3.
        #expect(messages.filter { $0.partition == 0 }.map(\.offset) == [0, 1, 2, 3])
        #expect(messages.filter { $0.partition == 1 }.map(\.offset) == [0, 1, 2])
        let sample = try #require(messages.first { $0.partition == 1 && $0.offset == 2 })
        #expect(sample.key == Array("user-1-2".utf8))
        #expect(sample.value == Array(#"{"n": 2}"#.utf8))
        #expect(sample.channel == "orders.1")
        #expect(sample.header("type") == Array("order".utf8))
        let generator = try #require(source as? GenerateSource)
        #expect(generator.counts.generated == 7)
        #expect(generator.counts.acknowledged == 7)
        #expect(context.ledger.ledger(for: 0).releasedThrough == 3)
        #expect(context.ledger.ledger(for: 1).releasedThrough == 2)
    }

    @Test func theGeneratorUsesAFixedPayloadOfTheGivenSize() async throws {
        let built = try Built(document(target: "drop: {}", source: "generate: {count: 1, size: 1KiB}"))
        let source = try built.source()
        let router = Router(budget: ByteBudget(limit: 1 << 20), logger: quiet)
        router.install(routes: [], runners: [:])
        let context = SourceContext(name: "gen", source: source, router: router, logger: quiet)
        try await source.run(context: context)
        // Routed nowhere: acknowledged as filtered, and the budget is given back.
        let generator = try #require(source as? GenerateSource)
        #expect(generator.counts == (generated: 1, acknowledged: 1))
        #expect(router.budget.used == 0)
    }
}
