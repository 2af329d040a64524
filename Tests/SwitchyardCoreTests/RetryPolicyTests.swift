import Testing
@testable import SwitchyardCore

@Suite("Retry policy")
struct RetryPolicyTests {
    @Test func theCeilingDoublesPerAttemptAndStopsAtMaxBackoff() {
        let policy = RetryPolicy(initialBackoff: .milliseconds(100), maxBackoff: .seconds(1))
        #expect(policy.ceiling(attempt: 0) == .milliseconds(100))
        #expect(policy.ceiling(attempt: 1) == .milliseconds(200))
        #expect(policy.ceiling(attempt: 2) == .milliseconds(400))
        #expect(policy.ceiling(attempt: 3) == .milliseconds(800))
        #expect(policy.ceiling(attempt: 4) == .seconds(1))
        #expect(policy.ceiling(attempt: 10) == .seconds(1))
        #expect(policy.ceiling(attempt: 1000) == .seconds(1))
        #expect(policy.ceiling(attempt: Int.max) == .seconds(1))
    }

    @Test func defaultsAre100msUpTo30sForever() {
        let policy = RetryPolicy()
        #expect(policy.initialBackoff == .milliseconds(100))
        #expect(policy.maxBackoff == .seconds(30))
        #expect(policy.maxAttempts == nil)
        #expect(policy.ceiling(attempt: 50) == .seconds(30))
    }

    @Test func delaysUseFullJitterBetweenZeroAndTheCeiling() {
        let policy = RetryPolicy(initialBackoff: .milliseconds(10), maxBackoff: .milliseconds(300))
        var generator = SeededGenerator(seed: 42)
        for attempt in 0..<8 {
            let ceiling = policy.ceiling(attempt: attempt)
            var samples: [Duration] = []
            for _ in 0..<2000 {
                samples.append(policy.delay(attempt: attempt, using: &generator))
            }
            #expect(samples.allSatisfy { $0 >= .zero && $0 <= ceiling }, "attempt \(attempt)")
            // Full jitter spreads over the whole range, not just near the ceiling.
            #expect(samples.contains { $0 < ceiling / 4 }, "attempt \(attempt)")
            #expect(samples.contains { $0 > ceiling * 3 / 4 }, "attempt \(attempt)")
        }
    }

    @Test func theSameSeedGivesTheSameDelays() {
        let policy = RetryPolicy(initialBackoff: .milliseconds(10), maxBackoff: .seconds(2))
        var a = SeededGenerator(seed: 7)
        var b = SeededGenerator(seed: 7)
        let first = (0..<20).map { policy.delay(attempt: $0, using: &a) }
        let second = (0..<20).map { policy.delay(attempt: $0, using: &b) }
        #expect(first == second)
    }

    @Test func aZeroBackoffNeverWaits() {
        let policy = RetryPolicy(initialBackoff: .zero, maxBackoff: .zero)
        var generator = SeededGenerator(seed: 1)
        #expect(policy.delay(attempt: 0, using: &generator) == .zero)
        #expect(policy.delay(attempt: 5, using: &generator) == .zero)
    }
}
