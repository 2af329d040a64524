import Foundation
import SwitchyardCore

/// What `/status` answers (JSON) and the status page shows: the pipeline, and per source and
/// target what flows, how far behind it is, and what went wrong. docs/observability.md
/// documents every field. Text only: names, counts and error descriptions; never a message's
/// contents, never an option's value, and every text the document's `${env:...}` and
/// `${file:...}` references inserted is replaced by `[redacted]`.
public struct StatusReport: Codable, Sendable, Equatable {
    public struct Memory: Codable, Sendable, Equatable {
        public var limitBytes: Int
        public var usedBytes: Int
    }

    public struct Inflight: Codable, Sendable, Equatable {
        public var messages: Int
        public var bytes: Int
    }

    public struct LastError: Codable, Sendable, Equatable {
        public var message: String
        /// Seconds since the Unix epoch.
        public var unixTime: Double
        public var ageSeconds: Double
    }

    public struct Source: Codable, Sendable, Equatable {
        public var name: String
        public var kind: String
        /// running, connecting, down, stopping or finished.
        public var state: String
        public var reason: String?
        /// Messages submitted to the routes, and their bytes.
        public var messages: Int
        public var bytes: Int
        public var acknowledged: Int
        /// Messages that no route took.
        public var filtered: Int
        /// Messages per second submitted, over the last 10 seconds (nil until measurable).
        public var ratePerSecond: Double?
        public var inflight: Int
        /// Messages waiting in the source system (nil where the source cannot tell).
        public var backlog: Int?
        /// In-flight plus backlog: how far the targets are behind the source system.
        public var lag: Int
        public var oldestUnackedSeconds: Double
        public var notes: [String]
        /// A group member that holds no share of the work (a Kafka consumer with no partition).
        public var idle: Bool
        public var lastError: LastError?
    }

    public struct Route: Codable, Sendable, Equatable {
        public var name: String
        public var from: [String]
        public var to: [String]
        /// Whether a channel or header filter selects what the route takes.
        public var filtered: Bool
    }

    public struct Target: Codable, Sendable, Equatable {
        public var name: String
        public var kind: String
        /// running, connecting, down, paused, stopped or closed.
        public var state: String
        public var reason: String?
        public var deadLetter: Bool
        public var written: Int
        public var bytes: Int
        public var retried: Int
        public var deadLettered: Int
        /// Messages per second written, over the last 10 seconds (nil until measurable).
        public var ratePerSecond: Double?
        /// Messages queued for the target's writers.
        public var queued: Int
        public var lastError: LastError?
    }

    public struct Tap: Codable, Sendable, Equatable {
        public struct Attached: Codable, Sendable, Equatable {
            public var at: String
            public var seen: Int
            public var sent: Int
            public var dropped: Int
            public var buffered: Int
        }

        public var enabled: Bool
        public var attached: [Attached]
    }

    public var name: String?
    public var generation: Int
    public var ready: Bool
    /// Why the process is not ready (empty when ready).
    public var reasons: [String]
    public var draining: Bool
    public var uptimeSeconds: Double
    public var memory: Memory
    public var inflight: Inflight
    public var sources: [Source]
    public var routes: [Route]
    public var targets: [Target]
    public var tap: Tap

    /// Compact JSON, keys sorted (stable for tools and tests).
    public var json: [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Array((try? encoder.encode(self)) ?? Data("{}".utf8))
    }

    public static func decode(_ bytes: [UInt8]) throws -> StatusReport {
        try JSONDecoder().decode(StatusReport.self, from: Data(bytes))
    }
}

/// Rates from successive readings of a counter: messages per second over the last 10 seconds
/// (a reading is kept at most once per second).
final class RateMeter: @unchecked Sendable {
    struct Reading {
        var at: ContinuousClock.Instant
        var count: Int
    }

    let lock = NSLock()
    var readings: [ObjectIdentifier: [Reading]] = [:]
    let window: Duration = .seconds(10)

    /// The rate of the counter `key`, which read 0 at `since` and reads `count` now.
    func rate(_ key: ObjectIdentifier, count: Int, since: ContinuousClock.Instant, now: ContinuousClock.Instant) -> Double? {
        lock.lock()
        defer { lock.unlock() }
        var list = readings[key] ?? [Reading(at: since, count: 0)]
        if let last = list.last, now - last.at >= .seconds(1) {
            list.append(Reading(at: now, count: count))
        }
        while list.count > 2, now - list[1].at >= window { list.removeFirst() }
        readings[key] = list
        let oldest = list[0]
        let span = (now - oldest.at).seconds
        guard span >= 0.2 else { return nil }
        return Double(max(0, count - oldest.count)) / span
    }

    /// Forgets counters no longer shown (replaced by a reload).
    func keep(_ keys: Set<ObjectIdentifier>) {
        lock.lock()
        defer { lock.unlock() }
        readings = readings.filter { keys.contains($0.key) }
    }
}

/// Replaces every text the document's references inserted by `[redacted]`.
struct Scrubber: Sendable {
    let texts: [String]

    func callAsFunction(_ text: String) -> String {
        var result = text
        for secret in texts where result.contains(secret) {
            result = result.replacing(secret, with: "[redacted]")
        }
        return result
    }
}
