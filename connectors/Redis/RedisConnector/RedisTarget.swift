import Logging
import Synchronization
import SwitchyardCore

/// The `redis` target: one command per message, a batch written as one pipeline per connection.
///
/// Replies are matched to messages in order. An error reply (`WRONGTYPE`, a score that is not a
/// number) fails only its message, permanently; `NOAUTH`/`WRONGPASS` pause the route; a lost
/// connection fails the messages without a reply as retriable and reconnects on the next write.
final class RedisTarget: Target {
    enum Command: String, CaseIterable, Sendable {
        case set, hset, xadd, publish, lpush, rpush, sadd, zadd, del, expire
    }

    static let commands = Command.allCases.map(\.rawValue)

    static let kind = TargetKind(
        kind: "redis",
        summary:
            "writes each message as one Redis command (set, hset, xadd, publish, lpush, rpush, sadd, zadd, del, expire); a batch is one pipeline",
        options: ObjectSchema(
            doc: "Writes to Redis through hiredis.",
            [
                OptionField(
                    "url", .secret, required: true,
                    doc:
                        "redis://[user[:password]@]host[:port][/db]; never shown. Use ${file:...} for the password. rediss:// is rejected: hiredis 0.14 has no TLS"
                ),
                OptionField(
                    "command", .choice(commands), default: "set",
                    doc: "the command written per message; key is the stream for xadd and the channel for publish"),
                OptionField("key", .template, required: true, doc: "key template, e.g. order:{{ json.id }}"),
                OptionField("field", .template, doc: "hash field (hset, required) or stream entry field (xadd, default value)"),
                OptionField("value", .template, default: "{{ value }}", doc: "value template (not used by del and expire)"),
                OptionField("score", .template, doc: "sorted-set score template (zadd, required), e.g. {{ timestamp }}"),
                OptionField(
                    "ttl", .duration,
                    doc:
                        "time to live: SET ... PX for set, PEXPIRE after the command for hset, xadd, lpush, rpush, sadd and zadd, the expiry itself for expire (required there)"
                ),
                OptionField("maxLength", .int(min: 1), doc: "xadd only: trim the stream to this many entries (MAXLEN)"),
                OptionField(
                    "approximateTrim", .bool, default: "false",
                    doc: "xadd only: trim with MAXLEN ~ (cheaper; the stream may keep somewhat more entries)"),
                OptionField(
                    "poolSize", .int(min: 1, max: 64), default: "1",
                    doc: "connections; each write uses one, so set it to the entry's parallelism"),
                OptionField("timeout", .duration, default: "10s", doc: "connect and socket read/write timeout"),
            ]),
        validate: validate,
        sessionlessPositionKeys: { options in options.template("key")?.readsOffsetWithoutSession == true ? ["key"] : [] },
        make: { setup in try RedisTarget(setup) }
    )

    static func validate(_ options: OptionValues) -> [ConfigIssue] {
        var issues: [ConfigIssue] = []
        if let url = options.string("url"), case .failure(let error) = RedisAddress.parse(url) {
            issues.append(options.issue("url", error.message))
        }
        let command = Command(rawValue: options.string("command") ?? "set") ?? .set
        let name = command.rawValue
        func forbid(_ field: String, unless allowed: Bool, _ why: String) {
            if !allowed && options.explicit.contains(field) { issues.append(options.issue(field, why)) }
        }
        if command == .hset && !options.has("field") { issues.append(options.issue("field", "command hset needs a field template")) }
        if command == .zadd && !options.has("score") { issues.append(options.issue("score", "command zadd needs a score template")) }
        if command == .expire && !options.has("ttl") { issues.append(options.issue("ttl", "command expire needs a ttl")) }
        forbid("field", unless: command == .hset || command == .xadd, "field applies to hset and xadd only, not \(name)")
        forbid("score", unless: command == .zadd, "score applies to zadd only, not \(name)")
        forbid("ttl", unless: command != .del && command != .publish, "ttl does not apply to \(name)")
        forbid("maxLength", unless: command == .xadd, "maxLength applies to xadd only, not \(name)")
        forbid("approximateTrim", unless: command == .xadd, "approximateTrim applies to xadd only, not \(name)")
        forbid("value", unless: command != .del && command != .expire, "\(name) writes no value")
        if let ttl = options.duration("ttl"), ttl < .milliseconds(1) {
            issues.append(options.issue("ttl", "must be at least 1ms"))
        }
        if options.template("key")?.source.isEmpty == true {
            issues.append(options.issue("key", "must not be empty"))
        }
        return issues
    }

    let name: String
    let command: Command
    let key: Template
    let field: Template?
    let value: Template
    let score: Template?
    let ttlMillis: [UInt8]?
    let maxLength: Int?
    let approximateTrim: Bool
    let plan: CommandPlan
    let address: RedisAddress
    let pool: ConnectionPool<RedisConnection>
    let logger: Logger
    let state = HealthState()

    init(_ setup: ConnectorSetup) throws {
        let options = setup.options
        name = setup.name
        switch RedisAddress.parse(options.string("url") ?? "") {
        case .success(let address): self.address = address
        case .failure(let error): throw ConnectorError.targetDown("\(options.path(of: "url")): \(error.message)")
        }
        command = Command(rawValue: options.string("command") ?? "set") ?? .set
        key = options.template("key") ?? (try! Template(""))
        field = options.template("field") ?? (command == .xadd ? try! Template("value") : nil)
        value = options.template("value") ?? (try! Template("{{ value }}"))
        score = options.template("score")
        if let ttl = options.duration("ttl") {
            let millis = max(1, Int64((ttl.seconds * 1000).rounded()))
            ttlMillis = Array(String(millis).utf8)
        } else {
            ttlMillis = nil
        }
        maxLength = options.int("maxLength")
        approximateTrim = options.bool("approximateTrim") ?? false
        plan = Self.makePlan(
            command: command, key: key, field: field, value: value, score: score, ttlMillis: ttlMillis, maxLength: maxLength,
            approximateTrim: approximateTrim)
        let timeout = options.duration("timeout") ?? .seconds(10)
        let size = options.int("poolSize") ?? 1
        let address = self.address
        let label = "switchyard.redis.\(setup.name)"
        pool = ConnectionPool((0..<size).map { slot in RedisConnection(address: address, timeout: timeout, label: "\(label).\(slot)") })
        logger = setup.logger
    }

    var health: ConnectorHealth { state.current }

    func setHealth(_ health: ConnectorHealth) {
        if state.set(health) && health == .up {
            logger.info("connected to redis", metadata: ["target": "\(name)", "address": "\(address.display)"])
        }
    }

    func open() async throws {
        do {
            for connection in pool.connections {
                try await connection.io.run { () throws -> Void in try connection.connectIfNeeded() }
            }
            setHealth(.up)
        } catch let error as ConnectorError {
            state.failed(error)
            throw error
        }
    }

    func write(_ messages: [Message]) async throws -> WriteResult {
        if messages.isEmpty { return .allWritten }
        do {
            let result = try await pool.withConnection { connection in
                try await connection.io.run { () throws -> WriteResult in
                    try connection.connectIfNeeded()
                    return try self.pipeline(messages, on: connection)
                }
            }
            setHealth(result.failures.contains { $0.error.kind == .retriable } ? .connecting : .up)
            return result
        } catch let error as ConnectorError {
            state.failed(error)
            throw error
        }
    }

    func close() async {
        for connection in pool.connections {
            await connection.io.run { connection.disconnect() }
        }
    }

    // MARK: the pipeline (runs on the connection's queue)

    /// The arguments of the command written for each message: per argument, whether it is a
    /// template and its index in `templates` or `literals`. Kept apart (rather than one enum per
    /// argument) so that the hot loop reaches each through a buffer pointer, in place, without
    /// retaining its payload for every message.
    struct CommandPlan: Sendable {
        var slots: [(isTemplate: Bool, index: Int)] = []
        var templates: [Template] = []
        var literals: [[UInt8]] = []

        mutating func literal(_ text: String) { literal(Array(text.utf8)) }

        mutating func literal(_ bytes: [UInt8]) {
            slots.append((false, literals.count))
            literals.append(bytes)
        }

        mutating func template(_ template: Template) {
            slots.append((true, templates.count))
            templates.append(template)
        }
    }

    /// The command of each message, fixed when the target is built: the command name and
    /// options as literals, the key, field, value and score as templates.
    static func makePlan(
        command: Command, key: Template, field: Template?, value: Template, score: Template?, ttlMillis: [UInt8]?, maxLength: Int?,
        approximateTrim: Bool
    ) -> CommandPlan {
        var plan = CommandPlan()
        plan.literal(command == .expire ? "PEXPIRE" : command.rawValue.uppercased())
        plan.template(key)
        switch command {
        case .set:
            plan.template(value)
            if let ttlMillis {
                plan.literal("PX")
                plan.literal(ttlMillis)
            }
        case .hset:
            plan.template(field!)
            plan.template(value)
        case .xadd:
            if let maxLength {
                plan.literal("MAXLEN")
                if approximateTrim { plan.literal("~") }
                plan.literal(String(maxLength))
            }
            plan.literal("*")
            plan.template(field!)
            plan.template(value)
        case .publish, .lpush, .rpush, .sadd:
            plan.template(value)
        case .zadd:
            plan.template(score!)
            plan.template(value)
        case .del:
            break
        case .expire:
            plan.literal(ttlMillis!)
        }
        return plan
    }

    static let pexpire = Array("PEXPIRE".utf8)

    /// Appends every message's command(s), then reads the replies in order.
    func pipeline(_ messages: [Message], on connection: RedisConnection) throws -> WriteResult {
        var blob: [UInt8] = []
        var offsets: [Int] = []
        var lengths: [Int] = []
        blob.reserveCapacity(256)
        offsets.reserveCapacity(plan.slots.count)
        lengths.reserveCapacity(plan.slots.count)
        // The PEXPIRE that follows a command: its name and TTL appended to the same blob, the
        // key (argument 1) taken from where the command rendered it.
        var expireOffsets = [0, 0, 0]
        var expireLengths = [Self.pexpire.count, 0, ttlMillis?.count ?? 0]
        // EXPIRE after the command, for the commands that have no TTL option of their own.
        let expireAfter = ttlMillis != nil && command != .set && command != .expire
        let repliesPerMessage = expireAfter ? 2 : 1
        connection.output.removeAll()
        defer { connection.output.removeAll() }
        // Elements are reached through buffer pointers, which borrow them in place: binding an
        // enum payload or copying a message would retain and release its buffers per message.
        plan.literals.withUnsafeBufferPointer { literals in
            plan.templates.withUnsafeBufferPointer { templates in
                plan.slots.withUnsafeBufferPointer { slots in
                    messages.withUnsafeBufferPointer { messages in
                        for index in messages.indices {
                            blob.removeAll(keepingCapacity: true)
                            offsets.removeAll(keepingCapacity: true)
                            lengths.removeAll(keepingCapacity: true)
                            for slot in slots {
                                let start = blob.count
                                if slot.isTemplate {
                                    templates[slot.index].render(messages[index], into: &blob)
                                } else {
                                    blob.append(contentsOf: literals[slot.index])
                                }
                                offsets.append(start)
                                lengths.append(blob.count - start)
                            }
                            connection.output.command(blob, offsets, lengths)
                            if expireAfter, let ttlMillis {
                                expireOffsets[0] = blob.count
                                blob.append(contentsOf: Self.pexpire)
                                expireOffsets[1] = offsets[1]
                                expireLengths[1] = lengths[1]
                                expireOffsets[2] = blob.count
                                blob.append(contentsOf: ttlMillis)
                                connection.output.command(blob, expireOffsets, expireLengths)
                            }
                        }
                    }
                }
            }
        }
        try connection.sendOutput()
        var failures: [(index: Int, error: ConnectorError)] = []
        for index in messages.indices {
            var failure: String?
            for _ in 0..<repliesPerMessage {
                let reply: RedisConnection.Reply
                switch connection.pipelinedReply() {
                case .success(let next): reply = next
                case .failure(let lost):
                    // Nothing confirmed at all: fail the whole batch; otherwise keep what was confirmed.
                    if index == 0 { throw lost }
                    for rest in index..<messages.count { failures.append((rest, lost)) }
                    return WriteResult(failures: failures)
                }
                if case .error(let text) = reply, failure == nil { failure = text }
            }
            if let failure {
                let error = Self.classify(failure, address: connection.address)
                if error.kind == .targetDown {
                    connection.disconnect()
                    throw error
                }
                failures.append((index, error))
            }
        }
        // Bytes left over would belong to no command: start over on a fresh connection.
        if failures.contains(where: { $0.error.kind == .retriable }) || connection.input.hasBufferedBytes { connection.disconnect() }
        return WriteResult(failures: failures)
    }

    /// The kind of an error reply: the first word is Redis's error code.
    static func classify(_ text: String, address: RedisAddress) -> ConnectorError {
        let code = text.prefix { $0 != " " }
        switch code {
        case "NOAUTH", "WRONGPASS", "NOPERM":
            return .targetDown("redis at \(address.display) refused the command: \(text)")
        case "MOVED", "ASK", "CLUSTERDOWN":
            return .targetDown("redis at \(address.display) is a cluster, which this target does not support: \(text)")
        case "LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "READONLY", "OOM":
            return .retriable("redis at \(address.display) is not accepting writes: \(text)")
        default:
            return .permanent("redis error: \(text)")
        }
    }
}
