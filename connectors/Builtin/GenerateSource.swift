import Logging
import Synchronization
import SwitchyardCore

/// The `generate` source: makes messages from templates, as fast as possible or at a rate.
///
/// Message `offset` is the per-shard sequence number (from 0) and `partition` the shard, so a
/// template such as `key: "user-{{ offset }}"` makes distinct keys. With `count` set, `run`
/// returns once that many messages were generated; the runtime then exits when all of them
/// are acknowledged.
final class GenerateSource: Source {
    static let kind = SourceKind(
        kind: "generate",
        summary: "generates messages from templates (for quickstarts, tests and benchmarks)",
        options: ObjectSchema(
            doc: "Generates messages.", exclusive: [["size", "value"]],
            [
                OptionField("count", .int(min: 0), doc: "messages to generate in all; absent for unlimited"),
                OptionField("rate", .number, doc: "messages per second; absent for as fast as possible"),
                OptionField(
                    "size", .size,
                    doc:
                        "value size in bytes of a fixed payload that the messages of a batch share (one allocation per batch); default 100 when no value template is set. Use a value template for a distinct buffer per message"
                ),
                OptionField("value", .template, doc: "value template, evaluated with partition = shard and offset = sequence number"),
                OptionField("key", .template, doc: "key template; absent for no key"),
                OptionField("channel", .template, default: "generate", doc: "channel template"),
                OptionField("headers", .map(.template), doc: "header templates"),
                OptionField(
                    "shards", .int(min: 1, max: 1024), default: "1", doc: "number of shards (partitions) the messages are spread over"),
                OptionField("batchSize", .int(min: 1, max: 100_000), default: "500", doc: "messages per submitted batch"),
            ]),
        validate: { options in
            var issues: [ConfigIssue] = []
            if let rate = options.number("rate"), rate <= 0 {
                issues.append(options.issue("rate", "must be greater than 0"))
            }
            return issues
        },
        make: { setup in GenerateSource(setup) }
    )

    let name: String
    let count: Int?
    let rate: Double?
    let payload: [UInt8]
    let valueTemplate: Template?
    let keyTemplate: Template?
    let channelTemplate: Template
    let headerTemplates: [(String, Template)]
    let shards: Int
    let batchSize: Int
    let logger: Logger

    struct Progress {
        var generated = 0
        var acknowledged = 0
        var through: [Int32: Int64] = [:]
    }

    let progress = Mutex(Progress())

    init(_ setup: ConnectorSetup) {
        let options = setup.options
        name = setup.name
        count = options.int("count")
        rate = options.number("rate")
        valueTemplate = options.template("value")
        let size = options.size("size") ?? 100
        let pattern = Array("switchyard-generated-payload-".utf8)
        payload = (0..<size).map { pattern[$0 % pattern.count] }
        keyTemplate = options.template("key")
        channelTemplate = options.template("channel")!
        headerTemplates = (options.map("headers") ?? []).compactMap { entry in
            if case .template(let template) = entry.value { return (entry.key, template) }
            return nil
        }
        shards = options.int("shards") ?? 1
        batchSize = options.int("batchSize") ?? 500
        logger = setup.logger
    }

    /// Messages generated and acknowledged so far.
    var counts: (generated: Int, acknowledged: Int) {
        progress.withLock { ($0.generated, $0.acknowledged) }
    }

    func run(context: SourceContext) async throws {
        let clock = ContinuousClock()
        let started = clock.now
        var sequence = [Int64](repeating: 0, count: shards)
        var generated = 0
        var batchNumber = 0
        let constantChannel = channelTemplate.constant.map { String(decoding: $0, as: UTF8.self) }
        let perBatch = rate.map { min(batchSize, max(1, Int($0 / 100))) } ?? batchSize
        while !context.isStopping {
            var size = perBatch
            if let count {
                size = min(size, count - generated)
                if size <= 0 { break }
            }
            if let rate {
                let due = started + .nanoseconds(Int64(Double(generated) / rate * 1e9))
                if due > clock.now {
                    try await Task.sleep(until: due, clock: clock)
                    if context.isStopping { break }
                }
            }
            let shard = batchNumber % shards
            batchNumber += 1
            let timestamp = currentMillis()
            var messages: [Message] = []
            messages.reserveCapacity(size)
            var offset = sequence[shard]
            // The messages of one batch share one copy of the fixed payload, the way messages of
            // one fetch share its buffer; a fresh copy per batch keeps reference counting local.
            let batchPayload = payload.withUnsafeBufferPointer { Array($0) }
            for _ in 0..<size {
                var message = Message(
                    value: batchPayload, channel: constantChannel ?? "", timestamp: timestamp, partition: Int32(shard), offset: offset)
                if constantChannel == nil { message.channel = channelTemplate.renderString(message) }
                if let valueTemplate { message.value = valueTemplate.render(message) }
                if let keyTemplate { message.key = keyTemplate.render(message) }
                if !headerTemplates.isEmpty {
                    let context = message
                    message.headers = headerTemplates.map { Header(name: $0.0, value: $0.1.render(context)) }
                }
                messages.append(message)
                offset += 1
            }
            sequence[shard] = offset
            generated += size
            progress.withLock { $0.generated = generated }
            try await context.submit(Batch(shard: Int32(shard), messages: messages))
        }
        logger.info("generator finished producing", metadata: ["source": "\(name)", "generated": "\(generated)"])
    }

    func acknowledge(shard: Int32, through offset: Int64, count: Int) {
        progress.withLock {
            $0.acknowledged += count
            $0.through[shard] = offset
        }
    }

    func close() async {
        let snapshot = progress.withLock { $0 }
        let through = snapshot.through.keys.sorted().map { "\($0):\(snapshot.through[$0]!)" }.joined(separator: ",")
        logger.notice(
            "generator closed",
            metadata: [
                "source": "\(name)", "generated": "\(snapshot.generated)", "acknowledged": "\(snapshot.acknowledged)",
                "acknowledgedThrough": "\(through)",
            ])
    }
}
