import Foundation
import Testing

/// Environment every bridge process gets: fast consumer-group joins on the mock clusters.
let fastGroup = ["SESSION_TIMEOUT_MS": "3000", "HEARTBEAT_MS": "500"]

/// `count` lines `k-PREFIX-i|v-PREFIX-i` for kcat -K '|'.
func keyedLines(_ prefix: String, _ count: Int, from start: Int = 0) -> [String] {
    (start..<(start + count)).map { "k-\(prefix)-\($0)|v-\(prefix)-\($0)" }
}

/// Kafka clusters bridged by the `switchyard` binary running the example documents in
/// configs/; each cluster is its own kafka-mock process.
@Suite("Kafka bridges", .serialized)
struct KafkaBridgeTests {
    @Test(.timeLimit(.minutes(2)))
    func kafkaToKafkaKeepsKeysHeadersAndPartitions() async throws {
        let count = 2000
        let east = try await Cluster.start(["orders": 4])
        let west = try await Cluster.start(["mirror.orders": 4])
        defer { east.terminate(); west.terminate() }
        try await east.produce("orders", keyed: keyedLines("e", count), headers: [("app", "shop"), ("kind", "order")])
        let sent = await east.records("orders")
        #expect(sent.count == count)
        let partitionOf = Dictionary(uniqueKeysWithValues: sent.map { ($0.key, $0.partition) })

        let directory = try Bed.scratch("k2k")
        let bridge = try Runtime(
            Bed.config("bridge-kafka-to-kafka.yaml"),
            environment: fastGroup.merging([
                "SOURCE_BROKERS": east.brokers, "TARGET_BROKERS": west.brokers, "TOPIC": "orders", "GROUP": Bed.unique("k2k"),
            ]) { $1 }, name: "bridge", directory: directory)
        var mirrored: [Record] = []
        await eventually("every message reached the west cluster") {
            mirrored = await west.records("mirror.orders")
            return mirrored.count >= count
        }
        #expect(mirrored.count == count, "duplicates or losses: \(mirrored.count) of \(count)")
        #expect(Set(mirrored.map(\.value)).count == count)
        for record in mirrored {
            #expect(record.value == "v" + record.key.dropFirst(), "\(record)")
            #expect(record.header("app") == "shop" && record.header("kind") == "order", "\(record)")
            #expect(record.header("switchyard-origin") == "east", "\(record)")
            #expect(record.header("switchyard-hops") == "1", "\(record)")
            #expect(record.partition == partitionOf[record.key], "partition kept: \(record)")
            #expect(record.timestamp > 0)
        }
        // Lag and health: everything committed, both ends connected.
        await eventually("the bridge lag is 0") { await bridge.metric("switchyard_bridge_lag_messages", ["source=\"east\""]) == 0 }
        #expect(await bridge.metric("switchyard_source_acknowledged_messages_total", ["source=\"east\""]) == Double(count))
        #expect(await bridge.status("/readyz") == 200)
        let status = await bridge.stop()
        #expect(status == 0, "\(bridge.logText)")
    }

    /// `partition: mirror` into a topic with fewer partitions: partitions the target has are
    /// kept, the others are hashed by key (and land somewhere that exists).
    @Test(.timeLimit(.minutes(2)))
    func mirrorHashesWhenTheTargetLacksThePartition() async throws {
        let count = 800
        let east = try await Cluster.start(["orders": 4])
        let west = try await Cluster.start(["mirror.orders": 2])
        defer { east.terminate(); west.terminate() }
        try await east.produce("orders", keyed: keyedLines("m", count))
        let partitionOf = Dictionary(uniqueKeysWithValues: await east.records("orders").map { ($0.key, $0.partition) })
        #expect(Set(partitionOf.values) == [0, 1, 2, 3], "kcat spread the keys over every partition")

        let directory = try Bed.scratch("mirror")
        let bridge = try Runtime(
            Bed.config("bridge-kafka-to-kafka.yaml"),
            environment: fastGroup.merging([
                "SOURCE_BROKERS": east.brokers, "TARGET_BROKERS": west.brokers, "TOPIC": "orders", "GROUP": Bed.unique("mirror"),
            ]) { $1 }, name: "bridge", directory: directory)
        var mirrored: [Record] = []
        await eventually("every message reached the west cluster") {
            mirrored = await west.records("mirror.orders")
            return mirrored.count >= count
        }
        #expect(mirrored.count == count)
        var hashed: [Int: Set<Int>] = [:]
        for record in mirrored {
            let source = try #require(partitionOf[record.key])
            if source < 2 {
                #expect(record.partition == source, "partition \(source) exists in the target and is kept: \(record)")
            } else {
                hashed[source, default: []].insert(record.partition)
            }
            #expect(record.partition < 2)
        }
        // Keys of a partition the target lacks are spread by their hash, not all sent to one.
        #expect(hashed.values.contains { $0.count == 2 }, "\(hashed)")
        #expect(await bridge.stop() == 0, "\(bridge.logText)")
    }

    @Test(.timeLimit(.minutes(2)))
    func replicateWritesEveryMessageToBothClusters() async throws {
        let count = 1500
        let primary = try await Cluster.start(["orders": 4])
        let replicaA = try await Cluster.start(["orders": 4])
        let replicaB = try await Cluster.start(["orders": 4])
        defer { primary.terminate(); replicaA.terminate(); replicaB.terminate() }
        try await primary.produce("orders", keyed: keyedLines("r", count), headers: [("app", "shop")])

        let directory = try Bed.scratch("replicate")
        let bridge = try Runtime(
            Bed.config("bridge-replicate.yaml"),
            environment: fastGroup.merging([
                "SOURCE_BROKERS": primary.brokers, "REPLICA_A_BROKERS": replicaA.brokers, "REPLICA_B_BROKERS": replicaB.brokers,
                "TOPIC": "orders", "GROUP": Bed.unique("replicate"),
            ]) { $1 }, name: "replicate", directory: directory)
        for (name, replica) in [("a", replicaA), ("b", replicaB)] {
            var copies: [Record] = []
            await eventually("every message reached replica \(name)") {
                copies = await replica.records("orders")
                return copies.count >= count
            }
            #expect(copies.count == count, "replica \(name)")
            #expect(Set(copies.map(\.key)) == Set((0..<count).map { "k-r-\($0)" }), "replica \(name)")
            for record in copies {
                #expect(record.value == "v" + record.key.dropFirst() && record.header("app") == "shop", "\(record)")
                #expect(record.header("switchyard-origin") == "primary" && record.header("switchyard-hops") == "1", "\(record)")
            }
        }
        await eventually("the bridge lag is 0") { await bridge.metric("switchyard_bridge_lag_messages") == 0 }
        #expect(await bridge.stop() == 0, "\(bridge.logText)")
    }

    @Test(.timeLimit(.minutes(2)))
    func aggregateMergesTwoClustersAndNamesTheOrigin() async throws {
        let count = 1000
        let eu = try await Cluster.start(["orders": 4])
        let us = try await Cluster.start(["orders": 2])
        let central = try await Cluster.start(["all.orders": 4])
        defer { eu.terminate(); us.terminate(); central.terminate() }
        try await eu.produce("orders", keyed: keyedLines("eu", count), headers: [("region", "eu")])
        try await us.produce("orders", keyed: keyedLines("us", count), headers: [("region", "us")])

        let directory = try Bed.scratch("aggregate")
        let bridge = try Runtime(
            Bed.config("bridge-aggregate.yaml"),
            environment: fastGroup.merging([
                "EU_BROKERS": eu.brokers, "US_BROKERS": us.brokers, "CENTRAL_BROKERS": central.brokers,
                "TOPIC": "orders", "GROUP": Bed.unique("aggregate"),
            ]) { $1 }, name: "aggregate", directory: directory)
        var merged: [Record] = []
        await eventually("every message of both regions reached the central cluster") {
            merged = await central.records("all.orders")
            return merged.count >= 2 * count
        }
        #expect(merged.count == 2 * count)
        #expect(Set(merged.map(\.key)).count == 2 * count)
        for record in merged {
            let region = record.key.hasPrefix("k-eu-") ? "eu" : "us"
            #expect(record.header("switchyard-origin") == region && record.header("region") == region, "\(record)")
            #expect(record.value == "v" + record.key.dropFirst(), "\(record)")
        }
        #expect(merged.filter { $0.header("switchyard-origin") == "eu" }.count == count)
        #expect(await bridge.stop() == 0, "\(bridge.logText)")
    }

    /// Two bridge processes, east to west and west to east, on the same topic name: every
    /// message produced on one side appears exactly once on the other and never comes back.
    @Test(.timeLimit(.minutes(2)))
    func activeActiveNeverLoops() async throws {
        let count = 1000
        let east = try await Cluster.start(["orders": 4])
        let west = try await Cluster.start(["orders": 4])
        defer { east.terminate(); west.terminate() }
        try await east.produce("orders", keyed: keyedLines("east", count))
        try await west.produce("orders", keyed: keyedLines("west", count))
        // Messages that already crossed the hop limit (2 in these documents) are skipped too.
        try await east.produce("orders", keyed: keyedLines("looped", 10), headers: [("switchyard-hops", "2")])

        let directory = try Bed.scratch("active-active")
        let environment = fastGroup.merging(["EAST_BROKERS": east.brokers, "WEST_BROKERS": west.brokers, "TOPIC": "orders"]) { $1 }
        let eastToWest = try Runtime(
            Bed.config("bridge-active-active-east.yaml"), environment: environment, name: "east-to-west", directory: directory)
        let westToEast = try Runtime(
            Bed.config("bridge-active-active-west.yaml"), environment: environment, name: "west-to-east", directory: directory)
        await eventually("both clusters hold both sides' messages") {
            let onEast = await east.records("orders").count
            let onWest = await west.records("orders").count
            return onEast >= 2 * count + 10 && onWest >= 2 * count
        }
        // Messages produced while both bridges run cross too.
        try await east.produce("orders", keyed: keyedLines("east", 200, from: count))
        try await west.produce("orders", keyed: keyedLines("west", 200, from: count))
        let total = count + 200
        await eventually("the live messages crossed") {
            let onEast = await east.records("orders").count
            let onWest = await west.records("orders").count
            return onEast >= 2 * total + 10 && onWest >= 2 * total
        }
        // Both bridges acknowledged the copies they read back (and skipped them).
        await eventually("each bridge skipped the other side's copies") {
            let a = await eastToWest.metric("switchyard_source_skipped_messages_total", ["reason=\"origin\""])
            let b = await westToEast.metric("switchyard_source_skipped_messages_total", ["reason=\"origin\""])
            return a == Double(total) && b == Double(total)
        }
        await eventually("both bridges have nothing in flight") {
            let a = await eastToWest.metric("switchyard_bridge_lag_messages")
            let b = await westToEast.metric("switchyard_bridge_lag_messages")
            return a == 0 && b == 0
        }
        // Nothing more arrives: no message loops back.
        try await Task.sleep(for: .seconds(3))
        let onEast = await east.records("orders")
        let onWest = await west.records("orders")
        #expect(onEast.count == 2 * total + 10, "east holds \(onEast.count)")
        #expect(onWest.count == 2 * total, "west holds \(onWest.count)")
        for (side, other, records) in [("east", "west", onEast), ("west", "east", onWest)] {
            let native = records.filter { $0.key.hasPrefix("k-\(side)-") }
            let copies = records.filter { $0.key.hasPrefix("k-\(other)-") }
            #expect(native.count == total && Set(native.map(\.key)).count == total, "\(side): its own messages once")
            #expect(copies.count == total && Set(copies.map(\.key)).count == total, "\(side): the other side's messages once")
            #expect(native.allSatisfy { $0.header("switchyard-origin") == nil }, "\(side): native messages carry no origin")
            #expect(copies.allSatisfy { $0.header("switchyard-origin") == other && $0.header("switchyard-hops") == "1" }, "\(side)")
        }
        #expect(!onWest.contains { $0.key.hasPrefix("k-looped-") }, "messages over the hop limit are not bridged")
        #expect(await eastToWest.metric("switchyard_source_skipped_messages_total", ["reason=\"max_hops\""]) == 10)
        #expect(await eastToWest.metric("switchyard_source_acknowledged_messages_total") == Double(2 * total + 10))
        #expect(await eastToWest.stop() == 0, "\(eastToWest.logText)")
        #expect(await westToEast.stop() == 0, "\(westToEast.logText)")
    }

    /// A target cluster that is gone: the messages stay in flight, the lag shows them, the
    /// oldest unacknowledged message ages, and `/readyz` names the target.
    @Test(.timeLimit(.minutes(2)))
    func lagAndReadinessWhileTheTargetIsDown() async throws {
        let count = 500
        let east = try await Cluster.start(["orders": 4])
        let west = try await Cluster.start(["mirror.orders": 4])
        defer { east.terminate() }
        let gone = west.brokers
        await west.stop()
        try await east.produce("orders", keyed: keyedLines("lag", count))
        let directory = try Bed.scratch("lag")
        let bridge = try Runtime(
            Bed.config("bridge-kafka-to-kafka.yaml"),
            environment: fastGroup.merging([
                "SOURCE_BROKERS": east.brokers, "TARGET_BROKERS": gone, "TOPIC": "orders", "GROUP": Bed.unique("lag"),
            ]) { $1 }, name: "bridge", directory: directory)
        await eventually("the lag counts every message") {
            await bridge.metric("switchyard_bridge_lag_messages", ["source=\"east\""]) == Double(count)
        }
        await eventually("the oldest unacknowledged message ages") {
            (await bridge.metric("switchyard_oldest_unacked_age_seconds", ["source=\"east\""]) ?? 0) > 1
        }
        #expect(await bridge.status("/readyz") == 503)
        let reasons = try await sh("curl -s -m 2 http://127.0.0.1:\(bridge.port)/readyz")
        #expect(reasons.contains("target west"), "\(reasons)")
        #expect(await bridge.metric("switchyard_source_acknowledged_messages_total") == 0)
        await bridge.child.kill9()
    }
}
