import Foundation
import Testing
import SwitchyardCore
@testable import RedisConnector

/// The `redis` target against the test bed's redis-server, checked with redis-cli.
@Suite("Redis target", .serialized)
struct RedisTargetTests {
    typealias Node = StoreBed.Node
    let url: String
    let port: String

    init() throws {
        url = try StoreBed.value("SWITCHYARD_REDIS_URL")
        port = try StoreBed.value("SWITCHYARD_REDIS_PORT")
    }

    var kind: TargetKind { RedisConnectors.family.targets[0] }

    @discardableResult
    func cli(_ arguments: String...) throws -> String {
        let result = try StoreBed.run("redis-cli", ["-h", "127.0.0.1", "-p", port, "--raw"] + arguments)
        #expect(result.status == 0, "redis-cli \(arguments) failed: \(result.error)")
        return result.output
    }

    func open(_ options: [(String, Node)]) async throws -> any Target {
        let target = try StoreBed.make(kind, [("url", .text(url))] + options)
        try await target.open()
        return target
    }

    @Test func setWithTTLWritesEveryValueAndExpiresThem() async throws {
        let prefix = StoreBed.unique("set")
        let target = try await open([("command", .text("set")), ("key", .text("\(prefix):{{ json.id }}")), ("ttl", .plain("60s"))])
        let batch = (0..<50).map { StoreBed.message(value: "{\"id\": \($0), \"note\": \"a b\\u0000c\"}", offset: Int64($0)) }
        let result = try await target.write(batch)
        #expect(result.failures.isEmpty)
        #expect(try cli("GET", "\(prefix):7") == "{\"id\": 7, \"note\": \"a b\\u0000c\"}")
        let ttl = try #require(Int(try cli("PTTL", "\(prefix):49")))
        #expect(ttl > 50_000 && ttl <= 60_000)
        // Redelivery overwrites: the same keys and values, no more keys.
        #expect(try await target.write(batch).failures.isEmpty)
        #expect(try cli("--scan", "--pattern", "\(prefix):*").split(separator: "\n").count == 50)
        #expect(try cli("GET", "\(prefix):49") == "{\"id\": 49, \"note\": \"a b\\u0000c\"}")
        await target.close()
    }

    @Test func binaryValuesAreStoredByteForByte() async throws {
        let key = StoreBed.unique("bin")
        let target = try await open([("key", .text(key))])
        let bytes: [UInt8] = [0, 1, 2, 13, 10, 255, 0x24, 0x2A]
        let result = try await target.write([Message(value: bytes)])
        #expect(result.failures.isEmpty)
        let dump = try StoreBed.run("sh", ["-c", "redis-cli -h 127.0.0.1 -p \(port) --no-raw STRLEN \(key)"])
        #expect(dump.output == "(integer) 8")
        await target.close()
    }

    @Test func hsetWritesFieldsAndAppliesTheTTLToTheHash() async throws {
        let key = StoreBed.unique("hash")
        let target = try await open([
            ("command", .text("hset")), ("key", .text(key)), ("field", .text("{{ key }}")), ("value", .text("{{ json.total }}")),
            ("ttl", .plain("1h")),
        ])
        let batch = (0..<10).map { StoreBed.message(key: "order-\($0)", value: "{\"total\": \($0 * 10)}", offset: Int64($0)) }
        #expect(try await target.write(batch).failures.isEmpty)
        #expect(try cli("HLEN", key) == "10")
        #expect(try cli("HGET", key, "order-3") == "30")
        let ttl = try #require(Int(try cli("TTL", key)))
        #expect(ttl > 3500 && ttl <= 3600)
        await target.close()
    }

    @Test func xaddTrimsTheStreamToMaxLength() async throws {
        let stream = StoreBed.unique("stream")
        let target = try await open([("command", .text("xadd")), ("key", .text(stream)), ("maxLength", .plain("5"))])
        let batch = (0..<20).map { StoreBed.message(value: "event-\($0)", offset: Int64($0)) }
        #expect(try await target.write(batch).failures.isEmpty)
        #expect(try cli("XLEN", stream) == "5")
        let last = try cli("XREVRANGE", stream, "+", "-", "COUNT", "1")
        #expect(last.hasSuffix("value\nevent-19"))
        await target.close()
    }

    @Test func zaddUsesTheScoreAndAnInvalidScoreFailsOnlyItsMessage() async throws {
        let key = StoreBed.unique("zset")
        let target = try await open([
            ("command", .text("zadd")), ("key", .text(key)), ("score", .text("{{ json.score }}")), ("value", .text("{{ json.name }}")),
        ])
        let batch = [
            StoreBed.message(value: "{\"score\": 2, \"name\": \"b\"}", offset: 0),
            StoreBed.message(value: "{\"score\": \"high\", \"name\": \"x\"}", offset: 1),
            StoreBed.message(value: "{\"score\": 1, \"name\": \"a\"}", offset: 2),
        ]
        let result = try await target.write(batch)
        #expect(result.failures.map(\.index) == [1])
        #expect(result.failures.first?.error.kind == .permanent)
        #expect(result.failures.first?.error.message.contains("not a valid float") == true)
        #expect(try cli("ZRANGE", key, "0", "-1") == "a\nb")
        await target.close()
    }

    @Test func aWrongTypeKeyFailsOnlyThatMessagePermanentlyAndTheOthersAreWritten() async throws {
        let prefix = StoreBed.unique("wrongtype")
        try cli("RPUSH", "\(prefix):2", "a list, not a hash")
        let target = try await open([("command", .text("hset")), ("key", .text("\(prefix):{{ offset }}")), ("field", .text("v"))])
        let batch = (0..<5).map { StoreBed.message(value: "value-\($0)", offset: Int64($0)) }
        let result = try await target.write(batch)
        #expect(result.failures.map(\.index) == [2])
        let error = try #require(result.failures.first?.error)
        #expect(error.kind == .permanent)
        #expect(error.message.contains("WRONGTYPE"))
        for index in [0, 1, 3, 4] {
            #expect(try cli("HGET", "\(prefix):\(index)", "v") == "value-\(index)")
        }
        // The connection stays usable after an error reply.
        #expect(try await target.write([StoreBed.message(value: "later", offset: 9)]).failures.isEmpty)
        #expect(try cli("HGET", "\(prefix):9", "v") == "later")
        await target.close()
    }

    @Test func aWrongPasswordIsATargetDownErrorThatDoesNotShowThePassword() async throws {
        let address = url.replacingOccurrences(of: "redis://", with: "redis://nobody:s3cret-pw@")
        let target = try StoreBed.make(kind, [("url", .text(address)), ("key", .text("k"))])
        do {
            try await target.open()
            Issue.record("open succeeded with a wrong password")
        } catch let error as ConnectorError {
            #expect(error.kind == .targetDown)
            #expect(error.message.contains("WRONGPASS"))
            #expect(!error.message.contains("s3cret-pw"))
        }
        if case .down = target.health {} else { Issue.record("health is \(target.health), expected down") }
        // A write reports the same: the route pauses instead of retrying fast.
        await #expect(throws: ConnectorError.self) { _ = try await target.write([StoreBed.message(value: "x")]) }
        await target.close()
    }

    @Test func aLostConnectionIsRetriableAndTheNextWriteReconnects() async throws {
        let prefix = StoreBed.unique("reconnect")
        let target = try await open([("key", .text("\(prefix):{{ offset }}"))])
        #expect(try await target.write([StoreBed.message(value: "one", offset: 1)]).failures.isEmpty)
        try cli("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
        var outcome: ConnectorError?
        do {
            let result = try await target.write([StoreBed.message(value: "two", offset: 2)])
            outcome = result.failures.first?.error
        } catch let error as ConnectorError {
            outcome = error
        }
        #expect(outcome?.kind == .retriable)
        #expect(target.health == .connecting)
        #expect(try await target.write([StoreBed.message(value: "two", offset: 2)]).failures.isEmpty)
        #expect(try cli("GET", "\(prefix):2") == "two")
        #expect(target.health == .up)
        await target.close()
    }

    @Test func aNonDefaultDatabaseIsSelected() async throws {
        let key = StoreBed.unique("db")
        let address = url.replacingOccurrences(of: "/0", with: "/3")
        let target = try StoreBed.make(kind, [("url", .text(address)), ("key", .text(key))])
        try await target.open()
        #expect(try await target.write([StoreBed.message(value: "in db 3")]).failures.isEmpty)
        #expect(try cli("-n", "3", "GET", key) == "in db 3")
        #expect(try cli("-n", "0", "EXISTS", key) == "0")
        await target.close()
    }

    // MARK: validation

    @Test func redissIsRejectedAtValidationWithThePathAndTheReason() {
        let issues = StoreBed.issues(kind, [("url", .text("rediss://user:pw@cache.example.com:6380/0")), ("key", .text("k"))])
        #expect(issues.count == 1)
        #expect(issues.first?.path == "spec.targets[0].redis.url")
        #expect(issues.first?.message.contains("hiredis 0.14 has no TLS") == true)
        #expect(issues.first?.description.contains("pw") == false)
        #expect(RedisConnectors.family.notes.contains { $0.contains("no TLS") })
    }

    @Test func invalidDocumentsNameThePath() {
        let unknown = StoreBed.issues(kind, [("url", .text(url)), ("command", .text("incrby")), ("key", .text("k"))])
        #expect(unknown.map(\.path) == ["spec.targets[0].redis.command"])
        let noField = StoreBed.issues(kind, [("url", .text(url)), ("command", .text("hset")), ("key", .text("k"))])
        #expect(noField.map(\.path) == ["spec.targets[0].redis.field"])
        let noScore = StoreBed.issues(kind, [("url", .text(url)), ("command", .text("zadd")), ("key", .text("k"))])
        #expect(noScore.map(\.path) == ["spec.targets[0].redis.score"])
        let badURL = StoreBed.issues(kind, [("url", .text("http://127.0.0.1:6379")), ("key", .text("k"))])
        #expect(badURL.map(\.path) == ["spec.targets[0].redis.url"])
        let badTemplate = StoreBed.issues(kind, [("url", .text(url)), ("key", .text("order:{{ json.id"))])
        #expect(badTemplate.map(\.path) == ["spec.targets[0].redis.key"])
        let misplaced = StoreBed.issues(kind, [("url", .text(url)), ("key", .text("k")), ("maxLength", .plain("10"))])
        #expect(misplaced.map(\.path) == ["spec.targets[0].redis.maxLength"])
        let noKey = StoreBed.issues(kind, [("url", .text(url))])
        #expect(noKey.map(\.path) == ["spec.targets[0].redis.key"])
    }

    @Test func addressesParse() throws {
        let full = try RedisAddress.parse("redis://app:p%40ss@cache:6380/2").get()
        #expect(full == RedisAddress(host: "cache", port: 6380, database: 2, username: "app", password: "p@ss"))
        let passwordOnly = try RedisAddress.parse("redis://:secret@[::1]").get()
        #expect(passwordOnly == RedisAddress(host: "::1", port: 6379, database: 0, username: nil, password: "secret"))
        #expect(passwordOnly.display == "[::1]:6379/0")
    }

    // MARK: through the runtime

    @Test func generateToRedisThroughTheRuntimeWritesEveryMessageAndDeadLettersWrongTypes() async throws {
        let prefix = StoreBed.unique("e2e")
        // Keys of offsets 100 and 200 hold lists, so HSET on them fails with WRONGTYPE.
        try cli("RPUSH", "\(prefix):0-100", "x")
        try cli("RPUSH", "\(prefix):0-200", "x")
        let deadLetters = FileManager.default.temporaryDirectory.appendingPathComponent(StoreBed.unique("dlq") + ".ndjson")
        defer { try? FileManager.default.removeItem(at: deadLetters) }
        let document = """
            apiVersion: switchyard.dev/v1alpha1
            kind: Connector
            metadata: {name: redis-e2e}
            spec:
              sources:
                - name: gen
                  generate: {count: 1000, batchSize: 250, value: '{"id": {{ offset }}}'}
              targets:
                - name: cache
                  redis:
                    url: "\(url)"
                    command: hset
                    key: "\(prefix):{{ partition }}-{{ offset }}"
                    field: doc
                - name: dlq
                  file: {path: "\(deadLetters.path)"}
              routes:
                - {from: [gen], to: [cache]}
              delivery: {deadLetter: dlq}
              observability: {listen: ""}
            """
        let run = try await StoreBed.runDocument(document)
        #expect(run.status == 0, "switchyard exited \(run.status): \(run.log.suffix(2000))")
        let keys = try cli("--scan", "--pattern", "\(prefix):*").split(separator: "\n")
        #expect(keys.count == 1000)
        #expect(try cli("HGET", "\(prefix):0-999", "doc") == "{\"id\": 999}")
        let lines = (try? String(contentsOf: deadLetters, encoding: .utf8))?.split(separator: "\n") ?? []
        #expect(lines.count == 2)
        #expect(lines.allSatisfy { $0.contains("WRONGTYPE") })
    }
}
