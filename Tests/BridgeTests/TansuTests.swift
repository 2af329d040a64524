import Foundation
import TestBedSupport
import Testing
#if canImport(Glibc)
    import Glibc
#endif

/// The second lane: the `switchyard` binary against tansu, a Kafka implementation of its own
/// (not librdkafka's mock cluster), run with librdkafka 2.16 (`SWITCHYARD_RDKAFKA2_LIBDIR` on
/// LD_LIBRARY_PATH; Debian's 2.0.2 cannot talk to tansu). Topics are checked and written with
/// confluent-kafka from the test bed's venv (scripts/lib/kafka_tool.py). The suite runs one test
/// at a time: they share the one broker.
@Suite(
    .serialized,
    .enabled(
        if: Tansu.available,
        "SWITCHYARD_TANSU_BROKERS is not in .state/services.env: start tansu with `scripts/services start tansu` (scripts/test starts it)"))
struct TansuTests {
    /// createTopics sizes the missing target topic after the source topic, copies the listed
    /// configs, and partition: keep then keeps every record's partition.
    @Test func createTopicsCopiesThePartitionCountAndConfigs() async throws {
        let source = Bed.unique("orders")
        try await Tansu.tool("create", source, "5", "retention.ms=123456789", "max.message.bytes=2000000")
        try await Tansu.tool("produce", source, "200")
        let run = try Tansu.Run(
            try Tansu.bridge(
                source: source, topic: "copy.{{ channel }}", createTopics: "{configs: [retention.ms, max.message.bytes, segment.ms]}"))
        defer { run.stop() }
        let target = "copy.\(source)"
        let records = await run.written(200, to: target)
        let described = try await Tansu.describe(target)
        #expect(described.partitions == 5)
        #expect(described.configs["retention.ms"] == "123456789")
        #expect(described.configs["max.message.bytes"] == "2000000")
        #expect(described.configs["segment.ms"] == nil, "a config the source topic does not report is not copied")
        #expect(Set(records.map(\.value)).count == 200)
        for record in records {
            // The value is "<source partition>:<i>": partition keep wrote it to the same number.
            #expect(record.value.hasPrefix("\(record.partition):"), "record \(record.value) landed in partition \(record.partition)")
        }
        #expect(await run.stopCleanly() == 0, "\(run.log)")
    }

    /// A cluster that lists groups (the mock cluster does not): `switchyard cutover` sees the
    /// running bridge's member in the preflight and refuses before anything is done.
    @Test func aCutoverWhileTheBridgeRunsIsRefusedInThePreflight() async throws {
        let source = Bed.unique("orders")
        try await Tansu.tool("create", source, "3")
        try await Tansu.tool("produce", source, "100")
        let document = try Tansu.bridge(source: source, topic: "cut.{{ channel }}", createTopics: "{}")
        let run = try Tansu.Run(document)
        defer { run.stop() }
        #expect(await run.written(100, to: "cut.\(source)").count == 100)
        let directory = try Bed.scratch("tansu-cutover")
        let config = directory.appendingPathComponent("bridge.yaml")
        try document.write(to: config, atomically: true, encoding: .utf8)
        let errors = directory.appendingPathComponent("errors").path
        let cutover = try Child(
            [Bed.binary, "cutover", "-c", config.path, "--group", Bed.unique("billing")],
            environment: ["LD_LIBRARY_PATH": try Tansu.libraryFolder()], output: directory.appendingPathComponent("out").path,
            errors: errors)
        let status = await cutover.exit(within: .seconds(60))
        let text = (try? String(contentsOfFile: errors, encoding: .utf8)) ?? ""
        #expect(status == 1, "\(text)")
        #expect(text.contains("a bridge is still running") && text.contains("Nothing was done"), "\(text)")
        #expect(await run.stopCleanly() == 0, "\(run.log)")
    }

    /// From another cluster (a librdkafka mock cluster) to tansu: the created topic takes the
    /// partition count the source cluster reports for the source topic.
    @Test func createTopicsSizesAfterASourceOnAnotherCluster() async throws {
        let source = Bed.unique("orders")
        let east = try await Cluster.start([source: 6])
        defer { east.terminate() }
        for partition in 0..<6 {
            try await east.produce(
                source, keyed: (0..<10).map { "k\(partition)-\($0)|\(partition):\(partition * 10 + $0)" }, partition: partition)
        }
        let run = try Tansu.Run(try Tansu.bridge(source: source, on: east.brokers, topic: "copy.{{ channel }}", createTopics: "{}"))
        defer { run.stop() }
        let target = "copy.\(source)"
        let records = await run.written(60, to: target)
        #expect(try await Tansu.describe(target).partitions == 6, "\(run.log)")
        #expect(Set(records.map(\.value)).count == 60, "\(run.log)")
        for record in records {
            #expect(record.value.hasPrefix("\(record.partition):"), "record \(record.value) landed in partition \(record.partition)")
        }
        #expect(await run.stopCleanly() == 0, "\(run.log)")
    }

    /// A target topic with fewer partitions than the source topic is refused at the start under
    /// partition: keep, before anything is read: the process exits 1 naming both topics and counts.
    @Test func keepRefusesATargetTopicWithTooFewPartitions() async throws {
        let source = Bed.unique("orders")
        let target = "narrow.\(source)"
        try await Tansu.tool("create", source, "4")
        try await Tansu.tool("create", target, "2")
        try await Tansu.tool("produce", source, "20")
        let run = try Tansu.Run(try Tansu.bridge(source: source, topic: target, createTopics: nil))
        defer { run.stop() }
        let status = await run.child.exit(within: .seconds(30))
        #expect(status == 1, "exit status \(status.map(String.init) ?? "none (still running)"): \(run.log)")
        let log = run.log
        #expect(log.contains("target topic '\(target)' has 2 partitions"), "\(log)")
        #expect(log.contains("source topic '\(source)' (source east) has 4"), "\(log)")
        #expect(log.contains("targets[0].kafka.partition"), "\(log)")
        #expect(try await Tansu.consume(target, 1, seconds: 2).isEmpty, "nothing may be written to the refused topic")
    }

    /// The same check when createTopics would create it too small: refused before creating.
    @Test func keepRefusesAFixedCountBelowTheSource() async throws {
        let source = Bed.unique("orders")
        try await Tansu.tool("create", source, "3")
        let run = try Tansu.Run(try Tansu.bridge(source: source, topic: "small.{{ channel }}", createTopics: "{partitions: 2}"))
        defer { run.stop() }
        let status = await run.child.exit(within: .seconds(30))
        #expect(status == 1, "exit status \(status.map(String.init) ?? "none (still running)"): \(run.log)")
        #expect(
            run.log.contains("target topic 'small.\(source)' has 2 partitions and source topic '\(source)' (source east) has 3"),
            "\(run.log)")
        #expect(try await Tansu.topicExists("small.\(source)") == false, "the topic must not be created")
    }

    /// Generator to Kafka: createTopics with a fixed count creates the topic, every message
    /// arrives, and the process exits 0 when the finite input is written.
    @Test func generatorToKafkaCreatesTheTopicWithAFixedCount() async throws {
        let topic = Bed.unique("generated")
        let run = try Tansu.Run(
            """
            sources:
              - name: numbers
                generate: {count: 300, value: "n{{ offset }}", key: "k{{ offset }}"}
            targets:
              - name: out
                kafka:
                  brokers: ["\(try Tansu.brokers())"]
                  topic: \(topic)
                  createTopics: {partitions: 3}
            routes:
              - {from: [numbers], to: [out]}
            observability: {listen: ""}
            """)
        defer { run.stop() }
        let status = await run.child.exit(within: .seconds(60))
        #expect(status == 0, "\(run.log)")
        #expect(try await Tansu.describe(topic).partitions == 3)
        let records = try await Tansu.consume(topic, 300, seconds: 20)
        #expect(Set(records.map(\.value)) == Set((0..<300).map { "n\($0)" }))
        #expect(Set(records.map(\.partition)).count > 1, "hashed by key over the three partitions")
    }

    /// Kafka to file: every record of a tansu topic reaches the file with its key, topic and
    /// partition.
    @Test func kafkaToFileReadsEveryRecord() async throws {
        let topic = Bed.unique("events")
        try await Tansu.tool("create", topic, "4")
        try await Tansu.tool("produce", topic, "250")
        let directory = try Bed.scratch("tansu-file")
        let output = directory.appendingPathComponent("out.ndjson").path
        let run = try Tansu.Run(
            """
            sources:
              - name: events
                kafka: {brokers: ["\(try Tansu.brokers())"], topics: [\(topic)], group: \(Bed.unique("file")), startOffset: earliest}
            targets:
              - name: archive
                file: {path: "\(output)"}
            routes:
              - {from: [events], to: [archive]}
            observability: {listen: ""}
            """)
        defer { run.stop() }
        struct Line: Decodable {
            var key: String?
            var value: String
            var channel: String
            var partition: Int
        }
        var lines: [Line] = []
        await eventually("250 lines in \(output)", within: .seconds(60)) {
            let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
            lines = text.split(separator: "\n").compactMap { try? JSONDecoder().decode(Line.self, from: Data($0.utf8)) }
            return lines.count >= 250 || run.exited
        }
        #expect(Set(lines.map(\.value)) == Set((0..<250).map { "\($0 % 4):\($0)" }), "\(run.log)")
        #expect(lines.count == 250, "no record written twice")
        for line in lines {
            #expect(line.channel == topic)
            #expect(line.value.hasPrefix("\(line.partition):"), "\(line.value) read from partition \(line.partition)")
            #expect(line.key == "k\(line.value.split(separator: ":").last ?? "")")
        }
        #expect(await run.stopCleanly() == 0, "\(run.log)")
    }
}

/// The tansu broker of the test bed and a client of it.
enum Tansu {
    static var available: Bool { (try? ServicesFile.environment())?["SWITCHYARD_TANSU_BROKERS"] != nil }

    static func brokers() throws -> String { try Bed.value("SWITCHYARD_TANSU_BROKERS") }

    /// The folder with librdkafka 2.16 as librdkafka.so.1.
    static func libraryFolder() throws -> String { try Bed.value("SWITCHYARD_RDKAFKA2_LIBDIR") }

    struct Record: Decodable {
        var partition: Int
        var key: String?
        var value: String

        init(from decoder: any Decoder) throws {
            var fields = try decoder.unkeyedContainer()
            partition = try fields.decode(Int.self)
            key = try fields.decodeIfPresent(String.self)
            value = try fields.decode(String.self)
        }
    }

    struct Description: Decodable {
        var partitions: Int
        var configs: [String: String]
    }

    /// Runs scripts/lib/kafka_tool.py against tansu and returns its output.
    @discardableResult
    static func tool(_ arguments: String..., recordFailure: Bool = true) async throws -> String {
        let python = Bed.root.appendingPathComponent(".state/venv/bin/python").path
        let script = Bed.root.appendingPathComponent("scripts/lib/kafka_tool.py").path
        let words = [python, script, try brokers()] + arguments
        return try await sh(
            words.map { "'\($0)'" }.joined(separator: " "), environment: ["LD_LIBRARY_PATH": try libraryFolder()],
            recordFailure: recordFailure)
    }

    static func describe(_ topic: String) async throws -> Description {
        try JSONDecoder().decode(Description.self, from: Data(try await tool("describe", topic).utf8))
    }

    static func topicExists(_ topic: String) async throws -> Bool {
        (try? await tool("describe", topic, recordFailure: false)) != nil
    }

    static func consume(_ topic: String, _ count: Int, seconds: Int, recordFailure: Bool = true) async throws -> [Record] {
        let output = try await tool("consume", topic, String(count), String(seconds), recordFailure: recordFailure)
        return try JSONDecoder().decode([Record].self, from: Data(output.utf8))
    }

    /// A bridge document to tansu: source topic `source` (source `east`, on tansu unless
    /// `sourceBrokers` names another cluster), partition keep.
    static func bridge(source: String, on sourceBrokers: String? = nil, topic: String, createTopics: String?) throws -> String {
        """
        sources:
          - name: east
            cluster: east
            kafka: {brokers: ["\(try sourceBrokers ?? brokers())"], topics: [\(source)], group: \(Bed.unique("bridge")), startOffset: earliest}
        targets:
          - name: west
            kafka:
              brokers: ["\(try brokers())"]
              topic: "\(topic)"
              partition: keep
        \(createTopics.map { "      createTopics: \($0)" } ?? "")
        routes:
          - {from: [east], to: [west]}
        delivery: {drainTimeout: 10s}
        observability: {listen: ""}
        """
    }

    /// `switchyard run` of a document, with librdkafka 2.16.
    final class Run: @unchecked Sendable {
        let child: Child
        let logPath: String

        init(_ document: String) throws {
            let directory = try Bed.scratch("tansu")
            let config = directory.appendingPathComponent("connector.yaml")
            try document.write(to: config, atomically: true, encoding: .utf8)
            logPath = directory.appendingPathComponent("switchyard.log").path
            child = try Child(
                [Bed.binary, "run", "-c", config.path], environment: ["LD_LIBRARY_PATH": try Tansu.libraryFolder()], output: logPath,
                errors: logPath)
        }

        var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

        /// The records of `topic` once `count` arrived (or the process exited, or a minute passed).
        func written(_ count: Int, to topic: String, sourceLocation: SourceLocation = #_sourceLocation) async -> [Record] {
            var records: [Record] = []
            await eventually("\(count) records arrived in \(topic)", within: .seconds(60), sourceLocation: sourceLocation) {
                // Until the process created it, the topic does not exist and the reader fails.
                records = (try? await Tansu.consume(topic, count, seconds: 2, recordFailure: false)) ?? []
                return records.count >= count || exited
            }
            return records
        }

        /// Whether the process has exited (gone or a zombie; not reaped here), so that a wait
        /// for its output can stop early.
        var exited: Bool {
            guard let stat = try? String(contentsOfFile: "/proc/\(child.pid)/stat", encoding: .utf8),
                let end = stat.range(of: ") ", options: .backwards)
            else { return true }
            return stat[end.upperBound...].hasPrefix("Z")
        }

        /// SIGTERM, then the exit status (nil when it did not exit within 30 s).
        func stopCleanly() async -> Int32? {
            child.signal(SIGTERM)
            return await child.exit(within: .seconds(30))
        }

        func stop() {
            child.signal(SIGKILL)
            var status: Int32 = 0
            _ = waitpid(child.pid, &status, WNOHANG)
        }
    }
}
