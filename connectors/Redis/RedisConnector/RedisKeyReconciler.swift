import SwitchyardCore

/// Compares the keys a `redis` target (`command: set` or `hset`) holds with what its source's
/// records make (`switchyard reconcile`, docs/migration.md): each record's key and value are
/// rendered with the target's own templates; per key and source partition the last record
/// counts (the last write wins); the values are read back with pipelined GET (HGET for hset),
/// and keys under the key template's literal prefix that no record makes are listed with SCAN.
///
/// Memory: a key and a 64-bit value hash per expected key; beyond `maxEntries` keys the work is
/// split into passes over a hash of the key (the source is read once per pass).
///
/// Blocking and not thread-safe: used on one thread, never the cooperative pool.
public final class RedisKeyReconciler {
    public typealias Report = KeyedReconciliationReport

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    struct Candidate {
        var channel: String
        var partition: Int32
        var offset: Int64
        var hash: UInt64
    }

    let address: RedisAddress
    /// The connection (AUTH and SELECT included) the target itself uses, on this thread only.
    let connection: RedisConnection
    /// hset: the field, a constant.
    let hashField: [UInt8]?
    let key: Template
    let value: Template
    /// The key template's text before its first `{{`: where SCAN looks for extra keys.
    public let prefix: [UInt8]
    var report: Report
    var expected: [[UInt8]: [Candidate]] = [:]
    var pass = 0
    var passes = 1
    var started = ContinuousClock.now

    /// - Parameter entry: a `redis` target of the document (`command: set` or `hset`).
    public init(target entry: ConnectorEntry) throws {
        let options = entry.options
        let command = options.string("command") ?? "set"
        guard command == "set" || command == "hset" else {
            throw Failure(
                description:
                    "\(entry.path).redis.command: reconcile compares keys written by set or hset; \(command) keeps no value per key to compare"
            )
        }
        switch RedisAddress.parse(options.string("url") ?? "") {
        case .success(let address): self.address = address
        case .failure(let error): throw Failure(description: "\(entry.path).redis.url: \(error.message)")
        }
        connection = RedisConnection(
            address: address, timeout: options.duration("timeout") ?? .seconds(10), label: "switchyard.reconcile.redis")
        key = options.template("key") ?? (try! Template(""))
        value = options.template("value") ?? (try! Template("{{ value }}"))
        if command == "hset" {
            guard let field = options.template("field"), !field.source.contains("{{") else {
                throw Failure(
                    description:
                        "\(entry.path).redis.field: reconcile compares hset targets whose field is a constant; this one is made from each message"
                )
            }
            var bytes: [UInt8] = []
            field.render(Message(value: []), into: &bytes)
            hashField = bytes
        } else {
            hashField = nil
        }
        let source = key.source
        prefix = Array((source.firstRange(of: "{{").map { source[..<$0.lowerBound] } ?? Substring(source)).utf8)
        report = Report(
            target: "redis \(address.display)\(prefix.isEmpty ? "" : " keys \(String(decoding: prefix, as: UTF8.self))*")", unit: "keys",
            identity: "key")
        if prefix.isEmpty { report.extraCount = nil }
    }

    /// Connects, authenticates and selects the database.
    public func connect() throws {
        do { try connection.connectIfNeeded() } catch let error as ConnectorError {
            throw Failure(description: error.message)
        }
        started = ContinuousClock.now
    }

    typealias Value = RedisConnection.Value

    /// Appends commands, then reads their replies in order.
    func pipeline(_ commands: [[[UInt8]]]) throws -> [Value] {
        do {
            for arguments in commands { try connection.append(arguments) }
        } catch let error as ConnectorError {
            throw Failure(description: error.message)
        }
        return try commands.map { _ in
            guard let value = connection.readValue() else { throw Failure(description: connection.lost().message) }
            return value
        }
    }

    func command(_ arguments: [[UInt8]]) throws -> Value { try pipeline([arguments])[0] }

    /// FNV-1a, 64 bits: value hashes and the pass a key belongs to.
    static func hash(_ bytes: [UInt8]) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return hash
    }

    func inPass(_ key: [UInt8]) -> Bool { passes == 1 || Int(Self.hash(key) % UInt64(passes)) == pass }

    /// How many passes `records` source records need with at most `maxEntries` keys in memory.
    public static func passes(records: Int, maxEntries: Int = 1_000_000) -> Int {
        max(1, (records + max(1, maxEntries) - 1) / max(1, maxEntries))
    }

    /// Starts pass `pass` of `passes`: the source is read again, and only keys of this pass kept.
    public func begin(pass: Int, of passes: Int) {
        self.pass = pass
        self.passes = max(1, passes)
        expected.removeAll(keepingCapacity: true)
    }

    /// One source record, in offset order per partition.
    public func add(_ message: Message) {
        if pass == 0 { report.records += 1 }
        var keyBytes: [UInt8] = []
        key.render(message, into: &keyBytes)
        guard inPass(keyBytes) else { return }
        var valueBytes: [UInt8] = []
        value.render(message, into: &valueBytes)
        let candidate = Candidate(
            channel: message.channel, partition: message.partition, offset: message.offset, hash: Self.hash(valueBytes))
        var candidates = expected[keyBytes] ?? []
        if let index = candidates.firstIndex(where: { $0.partition == message.partition && $0.channel == message.channel }) {
            candidates[index] = candidate
        } else {
            candidates.append(candidate)
        }
        expected[keyBytes] = candidates
    }

    static func position(_ candidate: Candidate) -> Report.Position {
        Report.Position(channel: candidate.channel, partition: candidate.partition, offset: candidate.offset)
    }

    /// Reads back the keys of this pass and lists the extra ones.
    public func endPass(show: Int) throws {
        report.expected += expected.count
        var missing: [Report.Position] = []
        var differing: [Report.Position] = []
        let keys = Array(expected.keys)
        var index = 0
        while index < keys.count {
            let chunk = keys[index..<min(keys.count, index + 1000)]
            index += chunk.count
            let values = try pipeline(chunk.map { key in hashField.map { [Array("HGET".utf8), key, $0] } ?? [Array("GET".utf8), key] })
            for (key, value) in zip(chunk, values) {
                let candidates = expected[key]!
                let last = candidates.max { $0.offset < $1.offset }!
                switch value {
                case .bytes(let bytes):
                    let hash = Self.hash(bytes)
                    if !candidates.contains(where: { $0.hash == hash }) {
                        report.differingCount += 1
                        differing.append(Self.position(last))
                    }
                case .null:
                    report.missingCount += 1
                    missing.append(Self.position(last))
                case .error, .integer, .array:
                    // WRONGTYPE: the key holds something else.
                    report.differingCount += 1
                    differing.append(Self.position(last))
                }
            }
        }
        func first(_ earlier: [Report.Position], _ more: [Report.Position]) -> [Report.Position] {
            Array((earlier + more).sorted { ($0.channel, $0.partition, $0.offset) < ($1.channel, $1.partition, $1.offset) }.prefix(show))
        }
        report.missing = first(report.missing, missing)
        report.differing = first(report.differing, differing)
        if !prefix.isEmpty { try scanExtra(show: show) }
    }

    /// SCAN under the prefix: keys of this pass that no record makes.
    func scanExtra(show: Int) throws {
        var pattern: [UInt8] = []
        for byte in prefix {
            if [UInt8(ascii: "*"), UInt8(ascii: "?"), UInt8(ascii: "["), UInt8(ascii: "]"), UInt8(ascii: "\\")].contains(byte) {
                pattern.append(UInt8(ascii: "\\"))
            }
            pattern.append(byte)
        }
        pattern.append(UInt8(ascii: "*"))
        var cursor: [UInt8] = Array("0".utf8)
        var seen = Set<[UInt8]>()
        var extra: [String] = []
        repeat {
            guard
                case .array(let parts) = try command([
                    Array("SCAN".utf8), cursor, Array("MATCH".utf8), pattern, Array("COUNT".utf8), Array("1000".utf8),
                ]),
                parts.count == 2, case .bytes(let next) = parts[0], case .array(let found) = parts[1]
            else {
                throw Failure(description: "redis at \(address.display) answered SCAN unexpectedly")
            }
            cursor = next
            for case .bytes(let key) in found where inPass(key) && !seen.contains(key) {
                seen.insert(key)
                if expected[key] == nil {
                    report.extraCount = (report.extraCount ?? 0) + 1
                    extra.append(String(decoding: key, as: UTF8.self))
                }
            }
        } while cursor != Array("0".utf8)
        report.held = (report.held ?? 0) + seen.count
        report.extra = Array((report.extra + extra).sorted().prefix(show))
    }

    /// The report; closes the connection.
    public func finish() -> Report {
        connection.disconnect()
        let elapsed = ContinuousClock.now - started
        report.seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return report
    }
}
