/// Exponential backoff with full jitter, capped (ARCHITECTURE.md section 3, item 5).
public struct RetryPolicy: Sendable, Equatable {
    public var initialBackoff: Duration
    public var maxBackoff: Duration
    /// Attempts before a retriable message failure is treated as permanent; `nil` retries forever.
    public var maxAttempts: Int?

    public init(initialBackoff: Duration = .milliseconds(100), maxBackoff: Duration = .seconds(30), maxAttempts: Int? = nil) {
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
        self.maxAttempts = maxAttempts
    }

    /// The upper bound of the wait before retry number `attempt` (0 for the first retry).
    public func ceiling(attempt: Int) -> Duration {
        let shift = min(attempt, 30)
        let base = initialBackoff * (1 << shift)
        return base > maxBackoff || base < .zero ? maxBackoff : base
    }

    /// A random wait in `0...ceiling(attempt)` (full jitter).
    public func delay<G: RandomNumberGenerator>(attempt: Int, using generator: inout G) -> Duration {
        let cap = ceiling(attempt: attempt)
        let nanos = cap.components.seconds * 1_000_000_000 + cap.components.attoseconds / 1_000_000_000
        guard nanos > 0 else { return .zero }
        return .nanoseconds(Int64.random(in: 0...nanos, using: &generator))
    }

    public func delay(attempt: Int) -> Duration {
        var generator = SystemRandomNumberGenerator()
        return delay(attempt: attempt, using: &generator)
    }
}

extension Duration {
    /// Seconds as a `Double`.
    public var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
