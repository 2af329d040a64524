#if canImport(Glibc)
    import Glibc
#endif
import Synchronization

/// Running totals of one source or target, readable at any time for `/status` (the Prometheus
/// counters beside them are write-only). Each field is an independent relaxed atomic: a reader
/// may see one count a batch ahead of another, never a torn value.
public final class ConnectorTally: Sendable {
    /// Source: messages submitted. Target: messages written.
    public let messages = Atomic<Int>(0)
    /// Source: bytes submitted (accounted). Target: value bytes written.
    public let bytes = Atomic<Int>(0)
    /// Source: messages acknowledged to it. Target: messages retried.
    public let secondary = Atomic<Int>(0)
    /// Source: messages no route took. Target: messages sent to the dead-letter target.
    public let tertiary = Atomic<Int>(0)
    let failure = Mutex<(message: String, at: ContinuousClock.Instant, wall: Double)?>(nil)

    public init() {}

    /// Records the latest error of the connector (text only: callers pass error descriptions,
    /// never message contents).
    public func recordError(_ message: String) {
        failure.withLock { $0 = (message, ContinuousClock.now, Self.wallClock()) }
    }

    /// The latest error, its Unix time in seconds, and its age.
    public var lastError: (message: String, unixTime: Double, age: Duration)? {
        failure.withLock { failure in
            failure.map { ($0.message, $0.wall, ContinuousClock.now - $0.at) }
        }
    }

    static func wallClock() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }
}
