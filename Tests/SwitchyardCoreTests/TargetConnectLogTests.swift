import Logging
import Synchronization
import Testing
@testable import SwitchyardCore

/// docs/operations.md promises one log line per state change, not one per retry.
@Suite struct TargetConnectLogTests {
    /// A target whose `open` fails a number of times, then succeeds.
    final class UnreachableTarget: Target {
        let failures: Int
        let errors: @Sendable (Int) -> ConnectorError
        let attempts = Atomic<Int>(0)

        init(failures: Int, errors: @escaping @Sendable (Int) -> ConnectorError) {
            self.failures = failures
            self.errors = errors
        }

        func open() async throws {
            let attempt = attempts.wrappingAdd(1, ordering: .relaxed).oldValue
            if attempt < failures { throw errors(attempt) }
        }

        func write(_ messages: [Message]) async throws -> WriteResult { .allWritten }
    }

    func messages(failures: Int, errors: @escaping @Sendable (Int) -> ConnectorError) async -> [String] {
        let records = RecordedLog()
        let logger = Logger(label: "test", factory: { _ in RecordingLogHandler(records: records) })
        let target = UnreachableTarget(failures: failures, errors: errors)
        let runner = TargetRunner(
            name: "cache", target: target, batching: BatchingPolicy(), lanes: 1, queueCapacity: 16,
            settings: DeliverySettings(retry: RetryPolicy(initialBackoff: .milliseconds(1), maxBackoff: .milliseconds(2)), deadLetter: nil),
            logger: logger)
        runner.closeQueues()
        await runner.run()
        #expect(target.attempts.load(ordering: .relaxed) == failures + 1)
        return records.messages
    }

    @Test func aTargetThatCannotConnectIsLoggedOncePerStateChange() async {
        let same = await messages(failures: 30) { _ in .targetDown("connection refused") }
        #expect(same.filter { $0 == "target could not connect; retrying" }.count == 1, "\(same)")
        #expect(same.filter { $0 == "target connected" }.count == 1, "\(same)")
        // A different error is a new state: logged once more.
        let changing = await messages(failures: 30) { attempt in .retriable(attempt < 10 ? "connection refused" : "name does not resolve") }
        #expect(changing.filter { $0 == "target could not connect; retrying" }.count == 2, "\(changing)")
    }
}

final class RecordedLog: Sendable {
    let lines = Mutex<[String]>([])
    var messages: [String] { lines.withLock { $0 } }
}

struct RecordingLogHandler: LogHandler {
    let records: RecordedLog
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        records.lines.withLock { $0.append(event.message.description) }
    }
}
