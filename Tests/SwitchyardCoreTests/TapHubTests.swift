import Testing
@testable import SwitchyardCore

@Suite struct TapHubTests {
    func messages(_ range: Range<Int>, value: String = "payload") -> [Message] {
        range.map {
            Message(
                key: Array("k\($0)".utf8), value: Array("\(value)-\($0)".utf8),
                headers: [Header("Secret", "s\($0)"), Header("trace", "t\($0)")], channel: "c", partition: 1, offset: Int64($0))
        }
    }

    func hub(_ settings: TapSettings = TapSettings(enabled: true, buffer: 10)) -> TapHub {
        let hub = TapHub()
        hub.configure(settings, points: [TapPoint(.source, "s"), TapPoint(.route, "r"), TapPoint(.target, "t")])
        return hub
    }

    @Test func idleUntilSomeoneAttaches() throws {
        let hub = hub()
        #expect(!hub.isActive)
        let tap = try hub.subscribe(TapPoint(.source, "s")).get()
        #expect(hub.isActive)
        hub.offer(TapPoint(.target, "t"), messages(0..<5))
        #expect(tap.counts == .init(seen: 0, sent: 0, dropped: 0, buffered: 0), "another point's messages are not this tap's")
        hub.unsubscribe(tap)
        #expect(!hub.isActive)
        #expect(tap.isClosed)
    }

    /// A full buffer drops and counts; seen = sent + dropped + buffered at every step.
    @Test func aFullBufferDropsAndCountsExactly() throws {
        let hub = hub()
        let tap = try hub.subscribe(TapPoint(.source, "s")).get()
        hub.offer(TapPoint(.source, "s"), messages(0..<25))
        #expect(tap.counts == .init(seen: 25, sent: 0, dropped: 15, buffered: 10))
        let first = tap.take(max: 4)
        #expect(first.map(\.offset) == [0, 1, 2, 3])
        hub.offer(TapPoint(.source, "s"), messages(25..<30))
        #expect(tap.counts == .init(seen: 30, sent: 4, dropped: 16, buffered: 10))
        let rest = tap.take()
        #expect(rest.map(\.offset) == [4, 5, 6, 7, 8, 9, 25, 26, 27, 28])
        let counts = tap.counts
        #expect(counts.seen == counts.sent + counts.dropped + counts.buffered)
    }

    @Test func samplesAreCutRedactedAndNeverSplitACharacter() throws {
        let hub = hub(TapSettings(enabled: true, buffer: 10, maxValueBytes: 8, redactHeaders: ["SECRET"]))
        let tap = try hub.subscribe(TapPoint(.target, "t")).get()
        var message = Message(value: Array("abcdefgé-tail".utf8), headers: [Header("secret", "x"), Header("trace", "short")])
        message.offset = 7
        hub.offer(TapPoint(.target, "t"), [message])
        let sample = try #require(tap.take().first)
        #expect(sample.value == Array("abcdefg".utf8), "é is two bytes and would straddle the limit")
        #expect(sample.valueBytes == 14)
        #expect(sample.truncated)
        #expect(sample.headers[0].value == nil)
        #expect(sample.headers[1].value == Array("short".utf8))
    }

    @Test func routesSelectWithTheirFilter() throws {
        let hub = hub()
        let tap = try hub.subscribe(TapPoint(.route, "r")).get()
        hub.offer(TapPoint(.route, "r"), messages(0..<6)) { $0 % 2 == 0 }
        #expect(tap.take().map(\.offset) == [0, 2, 4])
        #expect(tap.counts.seen == 3)
    }

    @Test func refusalsAndDisabling() throws {
        let off = TapHub()
        off.configure(TapSettings(enabled: false), points: [TapPoint(.source, "s")])
        guard case .failure(.disabled) = off.subscribe(TapPoint(.source, "s")) else {
            Issue.record("a disabled hub attached a tap"); return
        }
        let hub = hub(TapSettings(enabled: true, maxTaps: 1))
        guard case .failure(.unknownPoint) = hub.subscribe(TapPoint(.source, "nope")) else {
            Issue.record("unknown point attached"); return
        }
        let tap = try hub.subscribe(TapPoint(.source, "s")).get()
        guard case .failure(.tooMany(1)) = hub.subscribe(TapPoint(.source, "s")) else { Issue.record("more than maxTaps"); return }
        // A reload that turns taps off detaches the attached ones.
        hub.configure(TapSettings(enabled: false), points: [TapPoint(.source, "s")])
        #expect(tap.isClosed)
        #expect(!hub.isActive)
        #expect(TapPoint(parsing: "route:a:b") == TapPoint(.route, "a:b"))
        #expect(TapPoint(parsing: "queue:a") == nil)
        #expect(TapPoint(parsing: "source:") == nil)
    }
}
