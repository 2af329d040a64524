#if canImport(Glibc)
    import Glibc
#endif
import Foundation
import Testing

/// How a test holds the shared RabbitMQ broker of the test bed.
public enum BrokerHold: Sendable {
    /// The test uses the broker and needs it up throughout (any number at once).
    case shared
    /// The test stops and starts the broker; no `shared` holder runs meanwhile.
    case exclusive
}

/// A lock on the test bed's RabbitMQ broker, across test modules and processes: `flock` on a file
/// under `.state`. Taken without blocking a thread: a non-blocking attempt, then a short sleep.
public final class BrokerLock: Sendable {
    let descriptor: Int32

    private init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    static var path: String {
        // Tests/TestBedSupport/BrokerLock.swift -> the repository root.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent(".state/rabbitmq-broker.lock").path
    }

    public static func acquire(_ hold: BrokerHold, within limit: Duration = .seconds(600)) async throws -> BrokerLock {
        let path = Self.path
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw LockError("cannot open \(path): errno \(errno)") }
        let operation = (hold == .shared ? LOCK_SH : LOCK_EX) | LOCK_NB
        let deadline = ContinuousClock.now + limit
        while flock(descriptor, operation) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR, ContinuousClock.now < deadline else {
                close(descriptor)
                throw LockError("cannot lock \(path) (\(hold)) within \(limit)")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        return BrokerLock(descriptor: descriptor)
    }

    /// Unlocks and closes; call once.
    public func release() {
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }

    struct LockError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }
}

/// `.rabbitMQBroker(.shared)` on a suite or test holds the broker lock while it runs.
public struct RabbitMQBrokerTrait: TestTrait, SuiteTrait, TestScoping {
    let hold: BrokerHold

    /// On a suite, every test of it holds the lock while it runs (not the suite as a whole, so
    /// an exclusive holder waits for one test at most).
    public var isRecursive: Bool { true }

    public func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        if test.isSuite {
            try await function()
            return
        }
        let lock = try await BrokerLock.acquire(hold)
        defer { lock.release() }
        try await function()
    }
}

extension Trait where Self == RabbitMQBrokerTrait {
    public static func rabbitMQBroker(_ hold: BrokerHold) -> Self { RabbitMQBrokerTrait(hold: hold) }
}
