import Testing
@testable import SwitchyardCore

@Suite("Provenance and loop prevention")
struct ProvenanceTests {
    func text(_ message: Message, _ name: String) -> String? {
        message.header(name).map { String(decoding: $0, as: UTF8.self) }
    }

    @Test func aMessageWithoutProvenanceGetsTheOriginAndOneHop() {
        let rules = Provenance(cluster: "east")
        var message = Message(value: [1], headers: [Header("app", "shop")])
        #expect(rules.apply(&message) == nil)
        #expect(message.headers.map(\.name).prefix(3) == ["app", "switchyard-origin", "switchyard-hops"])
        #expect(text(message, "switchyard-origin") == "east" && text(message, "switchyard-hops") == "1")
    }

    @Test func aMessageWithADurablePositionCarriesItsSourcePosition() {
        let rules = Provenance(cluster: "east")
        var message = Message(value: [1], headers: [Header("app", "shop")], channel: "orders", partition: 3, offset: 1234)
        #expect(rules.apply(&message) == nil)
        #expect(
            message.headers.map(\.name) == [
                "app", "switchyard-origin", "switchyard-hops",
                "switchyard-source-cluster", "switchyard-source-topic", "switchyard-source-partition", "switchyard-source-offset",
            ])
        #expect(SourcePosition(headers: message.headers) == SourcePosition(cluster: "east", topic: "orders", partition: 3, offset: 1234))
        // Bridged again from west: the origin stays, the position is the new hop's.
        var again = Message(value: [1], headers: message.headers, channel: "mirror.orders", partition: 1, offset: 7)
        #expect(Provenance(cluster: "west").apply(&again) == nil)
        #expect(text(again, "switchyard-origin") == "east" && text(again, "switchyard-hops") == "2")
        #expect(SourcePosition(headers: again.headers) == SourcePosition(cluster: "west", topic: "mirror.orders", partition: 1, offset: 7))
        #expect(again.headers.filter { $0.name.hasPrefix("switchyard-source-") }.count == 4)
    }

    @Test func positionsThatRestartAndTheSwitchOffAreNotStamped() {
        var delivery = Message(value: [1], channel: "orders", partition: 1, offset: 5, session: 42)
        #expect(Provenance(cluster: "legacy").apply(&delivery) == nil)
        #expect(SourcePosition(headers: delivery.headers) == nil, "an AMQP delivery tag names no durable position")
        var off = Message(value: [1], channel: "orders", partition: 1, offset: 5)
        #expect(Provenance(cluster: "east", stampsPosition: false).apply(&off) == nil)
        #expect(off.headers.map(\.name) == ["switchyard-origin", "switchyard-hops"])
    }

    @Test func theFirstOriginStaysAndTheHopCountGrowsInPlace() {
        let rules = Provenance(cluster: "west", originHeader: "x-origin", hopsHeader: "x-hops", maxHops: 5)
        var message = Message(value: [1], headers: [Header("x-origin", "east"), Header("x-hops", "2"), Header("app", "shop")])
        #expect(rules.apply(&message) == nil)
        #expect(message.headers.map(\.name).prefix(3) == ["x-origin", "x-hops", "app"], "in place, before the position headers")
        #expect(text(message, "x-origin") == "east" && text(message, "x-hops") == "3")
        var garbled = Message(value: [1], headers: [Header("x-hops", "lots")])
        #expect(rules.apply(&garbled) == nil)
        #expect(text(garbled, "x-hops") == "1", "a hop count that is not a number counts as 0")
    }

    @Test func skippedOriginsAndTheHopLimit() {
        let rules = Provenance(cluster: "east", skipOrigins: ["west"], maxHops: 2)
        var fromWest = Message(value: [1], headers: [Header("switchyard-origin", "west")])
        #expect(rules.apply(&fromWest) == .origin)
        #expect(fromWest.headers.count == 1, "a skipped message is not stamped")
        var looped = Message(value: [1], headers: [Header("switchyard-origin", "north"), Header("switchyard-hops", "2")])
        #expect(rules.apply(&looped) == .maxHops)
        var fine = Message(value: [1], headers: [Header("switchyard-origin", "north"), Header("switchyard-hops", "1")])
        #expect(rules.apply(&fine) == nil)
        // Without a cluster the rules only skip.
        let skipOnly = Provenance(cluster: nil, skipOrigins: ["west"])
        var native = Message(value: [1])
        #expect(skipOnly.apply(&native) == nil && native.headers.isEmpty)
    }

    /// Skipped messages are acknowledged with the rest, in order, and never reach a target.
    @Test func theRouterAcknowledgesSkippedMessagesWithoutWritingThem() async throws {
        let target = ScriptedTarget()
        let pipeline = Pipeline(
            targets: [.init(name: "t", target: target)], routes: [Route(name: "r", from: ["src"], to: ["t"])],
            provenance: Provenance(cluster: "east", skipOrigins: ["west"]))
        var batch = messages(offsets: 0...5)
        batch[1].headers = [Header("switchyard-origin", "west")]
        batch[4].headers = [Header("switchyard-origin", "west")]
        try await pipeline.submit(batch)
        await eventually("every message is acknowledged") { pipeline.source.acknowledgedCount == 6 }
        #expect(target.writtenOffsets == [0, 2, 3, 5])
        #expect(target.written.allSatisfy { $0.header("switchyard-origin") == Array("east".utf8) })
        #expect(pipeline.context.inflightMessages == 0)
        // A batch made only of skipped messages is acknowledged at once.
        try await pipeline.submit(messages(offsets: 6...7, headers: [Header("switchyard-origin", "west")]))
        await eventually("the skipped batch is acknowledged") { pipeline.source.acknowledgedCount == 8 }
        #expect(target.written.count == 4)
        await pipeline.shutdown()
        #expect(pipeline.router.budget.used == 0)
    }

    @Test func inFlightCountsWhatTheTargetsHaveNotConfirmed() async throws {
        let gate = Gate()
        let target = ScriptedTarget { _, _ in
            await gate.pass()
            return .allWritten
        }
        let pipeline = Pipeline(targets: [.init(name: "t", target: target)], routes: [Route(name: "r", from: ["src"], to: ["t"])])
        try await pipeline.submit(messages(offsets: 0...9))
        await eventually("the target is writing") { gate.arrivals == 1 }
        #expect(pipeline.context.inflightMessages == 10)
        gate.open()
        await eventually("everything is acknowledged") { pipeline.source.acknowledgedCount == 10 }
        #expect(pipeline.context.inflightMessages == 0)
        await pipeline.shutdown()
    }
}
