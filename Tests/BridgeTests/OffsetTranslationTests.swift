import Foundation
import Testing
#if canImport(Glibc)
    import Glibc
#endif

/// `switchyard offsets translate` between two kafka-mock processes: a group that consumed part
/// of a topic on the source continues on the target, after the bridge copied the topic, from
/// exactly the next record: checked record by record, by key and source position.
@Suite("Offset translation across a bridge", .serialized)
struct OffsetTranslationTests {
    /// The fast-join settings for kcat group members on the mock clusters.
    static let kcatGroup = "-X auto.offset.reset=earliest -X session.timeout.ms=3000 -X heartbeat.interval.ms=500"

    /// One record a kcat group consumer printed: partition, offset, key and the source position
    /// headers (when the record was bridged).
    struct Consumed: Hashable, CustomStringConvertible {
        var partition: Int
        var offset: Int64
        var key: String
        var sourcePartition: Int?
        var sourceOffset: Int64?

        init?(_ line: Substring) {
            let fields = line.split(separator: "\t", maxSplits: 3, omittingEmptySubsequences: false)
            guard fields.count == 4, let partition = Int(fields[0]), let offset = Int64(fields[1]) else { return nil }
            self.partition = partition
            self.offset = offset
            key = String(fields[2])
            var headers: [String: String] = [:]
            for pair in fields[3].split(separator: ",") {
                guard let equals = pair.firstIndex(of: "=") else { continue }
                headers[String(pair[..<equals])] = String(pair[pair.index(after: equals)...])
            }
            sourcePartition = headers["switchyard-source-partition"].flatMap { Int($0) }
            sourceOffset = headers["switchyard-source-offset"].flatMap { Int64($0) }
        }

        var description: String {
            "p\(partition)@\(offset) \(key) from \(sourcePartition.map(String.init) ?? "-")@\(sourceOffset.map(String.init) ?? "-")"
        }
    }

    /// Consumes `topic` as a member of `group` with kcat (committing what it printed when it
    /// leaves): `count` records, or everything up to the end.
    static func consume(_ cluster: Cluster, _ topic: String, group: String, count: Int? = nil) async throws -> [Consumed] {
        let limit = count.map { "-c \($0)" } ?? "-e"
        let text = try await sh(
            "kcat -b '\(cluster.brokers)' -G '\(group)' \(kcatGroup) \(limit) -q -f '%p\\t%o\\t%k\\t%h\\n' '\(topic)'", limit: .seconds(90))
        return text.split(separator: "\n").compactMap(Consumed.init)
    }

    /// Every record of `topic` as (partition, offset, key), read with kcat -C.
    static func all(_ cluster: Cluster, _ topic: String) async throws -> [Consumed] {
        let text = try await sh("kcat -C -b '\(cluster.brokers)' -t '\(topic)' -o beginning -e -q -f '%p\\t%o\\t%k\\t%h\\n'")
        return text.split(separator: "\n").compactMap(Consumed.init)
    }

    /// Runs the binary with `arguments`; its exit status, standard output and error.
    static func switchyard(_ arguments: [String], environment: [String: String]) async throws -> (
        status: Int32, output: String, errors: String
    ) {
        let directory = try Bed.scratch("translate")
        let out = directory.appendingPathComponent("out").path
        let err = directory.appendingPathComponent("err").path
        let child = try Child([Bed.binary] + arguments, environment: environment, output: out, errors: err)
        guard let status = await child.exit(within: .seconds(120)) else {
            await child.kill9()
            Issue.record("switchyard \(arguments.joined(separator: " ")) did not finish within 120 s")
            throw BedMissing()
        }
        return (
            status, (try? String(contentsOfFile: out, encoding: .utf8)) ?? "", (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""
        )
    }

    /// The JSON report's partitions: verdict, translated offset and committed-before, by target partition.
    static func partitions(_ json: String) throws -> [Int: (verdict: String, offset: Int?, previous: Int?)] {
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        var result: [Int: (verdict: String, offset: Int?, previous: Int?)] = [:]
        for topic in try #require(object["topics"] as? [[String: Any]]) {
            for partition in try #require(topic["partitions"] as? [[String: Any]]) {
                result[try #require(partition["partition"] as? Int)] = (
                    try #require(partition["verdict"] as? String), partition["offset"] as? Int, partition["previouslyCommitted"] as? Int
                )
            }
        }
        return result
    }

    /// A bridge document like configs/bridge-kafka-to-kafka.yaml with `partition` chosen;
    /// `filter` copies only records with the header `copy: yes`.
    static func bridgeDocument(partition: String, filter: Bool = false, name: String = "bridge", in directory: URL) throws -> String {
        let path = directory.appendingPathComponent("\(name).yaml").path
        try """
        apiVersion: switchyard.dev/v1alpha1
        kind: Connector
        metadata: {name: \(name)}
        spec:
          sources:
            - name: east
              cluster: east
              kafka:
                brokers: ["${env:SOURCE_BROKERS}"]
                topics: ["${env:TOPIC}"]
                group: "${env:GROUP}"
                options: {session.timeout.ms: "3000", heartbeat.interval.ms: "500"}
          targets:
            - name: west
              kafka: {brokers: ["${env:TARGET_BROKERS}"], topic: "mirror.{{ channel }}", partition: \(partition)}
          routes:
            - {from: [east], to: [west]\(filter ? ", where: {headers: {copy: \"yes\"}}" : "")}
          observability: {listen: "127.0.0.1:${env:METRICS_PORT}"}
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Checks that `continued` (read on the target by the group after the translation) is
    /// exactly the source records `consumed` did not include, each once, in source order per
    /// source partition, with the key of the source record it names.
    static func expectExactContinuation(source: [Consumed], consumed: [Consumed], continued: [Consumed]) {
        let keyAt = Dictionary(uniqueKeysWithValues: source.map { ("\($0.partition)@\($0.offset)", $0.key) })
        let consumedPositions = Set(consumed.map { "\($0.partition)@\($0.offset)" })
        let expected = Set(source.map { "\($0.partition)@\($0.offset)" }).subtracting(consumedPositions)
        var seen: [String: Int] = [:]
        // Per target partition and source partition: a bridge keeps the order of a partition.
        var lastPerSource: [String: Int64] = [:]
        for record in continued {
            guard let partition = record.sourcePartition, let offset = record.sourceOffset else {
                Issue.record("a record on the target without a source position: \(record)")
                continue
            }
            let position = "\(partition)@\(offset)"
            seen[position, default: 0] += 1
            #expect(
                keyAt[position] == record.key, "the target record names \(position), whose key is \(keyAt[position] ?? "none"): \(record)")
            #expect(!consumedPositions.contains(position), "duplicate: the group had consumed \(position) on the source: \(record)")
            let lane = "\(record.partition)/\(partition)"
            if let last = lastPerSource[lane] { #expect(offset > last, "out of order: \(record) after source offset \(last)") }
            lastPerSource[lane] = offset
        }
        let missing = expected.subtracting(seen.keys)
        #expect(
            missing.isEmpty, "gap: \(missing.count) records the group had not consumed were skipped, e.g. \(missing.sorted().prefix(5))")
        let twice = seen.filter { $0.value > 1 }
        #expect(twice.isEmpty, "read twice on the target: \(twice.keys.sorted().prefix(5))")
        #expect(continued.count == expected.count, "\(continued.count) records read on the target, \(expected.count) expected")
        // Per source partition, the earliest record read is the one right after the committed offset.
        for (partition, records) in Dictionary(grouping: consumed, by: \.partition) {
            let committed = records.map(\.offset).max()! + 1
            if let first = continued.filter({ $0.sourcePartition == partition }).compactMap(\.sourceOffset).min() {
                #expect(first == committed, "source partition \(partition): resumed at \(first), committed \(committed)")
            }
        }
    }

    @Test(.timeLimit(.minutes(4)))
    func aGroupContinuesOnTheTargetFromExactlyTheNextRecord() async throws {
        let count = 2000
        let east = try await Cluster.start(["orders": 4])
        let west = try await Cluster.start(["mirror.orders": 4])
        defer { east.terminate(); west.terminate() }
        try await east.produce("orders", keyed: keyedLines("t", count))
        let source = try await Self.all(east, "orders")
        #expect(source.count == count)

        // The group reads 700 of the 2,000 records on the source and leaves (committing them).
        let group = Bed.unique("billing")
        let consumed = try await Self.consume(east, "orders", group: group, count: 700)
        #expect(consumed.count == 700)

        let directory = try Bed.scratch("translate-keep")
        let environment = fastGroup.merging([
            "SOURCE_BROKERS": east.brokers, "TARGET_BROKERS": west.brokers, "TOPIC": "orders", "GROUP": Bed.unique("bridge"),
        ]) { $1 }
        let bridge = try Runtime(Bed.config("bridge-kafka-to-kafka.yaml"), environment: environment, name: "bridge", directory: directory)
        await eventually("the bridge copied every record") { ((try? await Self.all(west, "mirror.orders"))?.count ?? 0) >= count }

        // A dry run: every partition exact (or at its end), nothing committed on the target yet.
        let config = Bed.config("bridge-kafka-to-kafka.yaml")
        let dry = try await Self.switchyard(
            ["offsets", "translate", "-c", config, "--group", group, "--output", "json"], environment: environment)
        #expect(dry.status == 0, "\(dry.errors)")
        let planned = try Self.partitions(dry.output)
        #expect(planned.count == 4)
        for (partition, entry) in planned {
            let committed = Int64(consumed.filter { $0.partition == partition }.count)
            let size = Int64(source.filter { $0.partition == partition }.count)
            let expected = committed == 0 ? "no-commit" : committed == size ? "at-end" : "exact"
            #expect(entry.verdict == expected, "partition \(partition) (\(committed) of \(size) read): \(entry)")
            if committed > 0 { #expect(entry.offset == Int(committed), "partition \(partition) (kept): the same offset") }
            #expect(entry.previous == nil, "nothing committed by a dry run")
        }

        let applied = try await Self.switchyard(
            ["offsets", "translate", "-c", config, "--group", group, "--apply"], environment: environment)
        #expect(applied.status == 0, "\(applied.errors)")
        #expect(applied.output.contains("applied: committed"), "\(applied.output)")
        #expect(await bridge.stop() == 0, "\(bridge.logText)")

        // The same group on the target continues from exactly the next record.
        let continued = try await Self.consume(west, "mirror.orders", group: group)
        Self.expectExactContinuation(source: source, consumed: consumed, continued: continued)
    }

    @Test(.timeLimit(.minutes(4)))
    func hashedIntoFewerPartitionsTheGroupContinuesExactly() async throws {
        let east = try await Cluster.start(["orders": 4])
        let west = try await Cluster.start(["mirror.orders": 2])
        defer { east.terminate(); west.terminate() }
        let directory = try Bed.scratch("translate-hash")
        let document = try Self.bridgeDocument(partition: "hash", in: directory)
        let environment = fastGroup.merging([
            "SOURCE_BROKERS": east.brokers, "TARGET_BROKERS": west.brokers, "TOPIC": "orders", "GROUP": Bed.unique("bridge"),
            "METRICS_PORT": String(Bed.freePort()),
        ]) { $1 }
        let bridge = try Runtime(document, environment: environment, name: "bridge", directory: directory)

        // Phase one: 600 records, copied, then read to the end by the group on the source.
        try await east.produce("orders", keyed: keyedLines("h", 600))
        await eventually("the bridge copied the first 600") { ((try? await Self.all(west, "mirror.orders"))?.count ?? 0) >= 600 }
        let group = Bed.unique("shipping")
        let consumed = try await Self.consume(east, "orders", group: group)
        #expect(consumed.count == 600)
        // Phase two: 400 more, copied; the group has not read them.
        try await east.produce("orders", keyed: keyedLines("h", 400, from: 600))
        await eventually("the bridge copied all 1,000") { ((try? await Self.all(west, "mirror.orders"))?.count ?? 0) >= 1000 }
        let source = try await Self.all(east, "orders")
        let target = try await Self.all(west, "mirror.orders")
        #expect(Set(target.compactMap(\.sourcePartition)) == [0, 1, 2, 3])
        #expect(Set(target.map(\.partition)) == [0, 1], "hashed into both target partitions")

        let applied = try await Self.switchyard(
            ["offsets", "translate", "-c", document, "--group", group, "--apply", "--output", "json"], environment: environment)
        #expect(applied.status == 0, "\(applied.errors)")
        let translated = try Self.partitions(applied.output)
        #expect(translated.count == 2)
        for (partition, entry) in translated {
            // The translated offset is the first phase-two record of the target partition.
            let phaseOne = target.filter { $0.partition == partition && (Int($0.key.split(separator: "-").last ?? "") ?? .max) < 600 }
            #expect(
                entry.verdict == "exact" && entry.offset == phaseOne.count,
                "target partition \(partition): \(entry), \(phaseOne.count) records of phase one")
        }
        #expect(await bridge.stop() == 0, "\(bridge.logText)")
        let continued = try await Self.consume(west, "mirror.orders", group: group)
        Self.expectExactContinuation(source: source, consumed: consumed, continued: continued)
    }

    @Test(.timeLimit(.minutes(4)))
    func badInputIsRefusedAndNothingIsCommitted() async throws {
        let east = try await Cluster.start(["orders": 4])
        let west = try await Cluster.start(["mirror.orders": 4, "elsewhere": 1])
        defer { east.terminate(); west.terminate() }
        try await east.produce("orders", keyed: keyedLines("b", 400))
        let group = Bed.unique("busy")
        _ = try await Self.consume(east, "orders", group: group, count: 150)
        let directory = try Bed.scratch("translate-bad")
        let environment = fastGroup.merging([
            "SOURCE_BROKERS": east.brokers, "TARGET_BROKERS": west.brokers, "TOPIC": "orders", "GROUP": Bed.unique("bridge"),
        ]) { $1 }
        let config = Bed.config("bridge-kafka-to-kafka.yaml")
        let bridge = try Runtime(config, environment: environment, name: "bridge", directory: directory)
        await eventually("the bridge copied every record") { ((try? await Self.all(west, "mirror.orders"))?.count ?? 0) >= 400 }
        #expect(await bridge.stop() == 0, "\(bridge.logText)")

        // An unknown group.
        let unknown = try await Self.switchyard(
            ["offsets", "translate", "-c", config, "--group", "nobody-\(UInt32.random(in: 0...UInt32.max))"], environment: environment)
        #expect(unknown.status == 1 && unknown.errors.contains("has no committed offsets on cluster east"), "\(unknown.errors)")
        // An unknown source topic.
        let topic = try await Self.switchyard(
            ["offsets", "translate", "-c", config, "--group", group], environment: environment.merging(["TOPIC": "no-such-topic"]) { $1 })
        #expect(
            topic.status == 1 && topic.errors.contains("source topic 'no-such-topic'") && topic.errors.contains("does not exist"),
            "\(topic.errors)")
        // A document without a Kafka source.
        let quickstart = try await Self.switchyard(
            ["offsets", "translate", "-c", Bed.config("quickstart.yaml"), "--group", group], environment: environment)
        #expect(
            quickstart.status == 1 && quickstart.errors.contains("no route from a kafka source to a kafka target"), "\(quickstart.errors)")
        // Mismatched partition counts with partition: keep.
        let fewer = try await Cluster.start(["mirror.orders": 2])
        defer { fewer.terminate() }
        let keep = try Self.bridgeDocument(partition: "keep", in: directory)
        let mismatched = try await Self.switchyard(
            ["offsets", "translate", "-c", keep, "--group", group, "--apply"],
            environment: environment.merging(["TARGET_BROKERS": fewer.brokers, "METRICS_PORT": "1"]) { $1 })
        #expect(
            mismatched.status == 1 && mismatched.errors.contains("has 2 partitions") && mismatched.errors.contains("has 4"),
            "\(mismatched.errors)")

        // The group has a member on the target: --apply is refused, nothing is committed.
        // The member reads another topic, so that it commits nothing of mirror.orders itself.
        let memberLog = directory.appendingPathComponent("member.err").path
        let member = try Child(
            ["/bin/sh", "-c", "exec kcat -b '\(west.brokers)' -G '\(group)' \(Self.kcatGroup) -f '%o\\n' elsewhere"],
            output: directory.appendingPathComponent("member.out").path, errors: memberLog)
        await eventually("the member on the target joined the group") {
            ((try? String(contentsOfFile: memberLog, encoding: .utf8)) ?? "").contains("assigned")
        }
        let busy = try await Self.switchyard(["offsets", "translate", "-c", config, "--group", group, "--apply"], environment: environment)
        #expect(
            busy.status == 1 && busy.errors.contains("has active members on the target cluster")
                && busy.errors.contains("Nothing was committed"), "\(busy.errors)")
        member.signal(SIGKILL)
        _ = await member.exit(within: .seconds(10))
        // The member read but never committed (killed): the group still has no offsets on the target.
        let after = try await Self.switchyard(
            ["offsets", "translate", "-c", config, "--group", group, "--output", "json"], environment: environment)
        #expect(after.status == 0, "\(after.errors)")
        for (partition, entry) in try Self.partitions(after.output) {
            #expect(entry.previous == nil, "partition \(partition): something was committed: \(entry)")
        }
    }
}
