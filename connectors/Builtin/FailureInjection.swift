import Synchronization
import SwitchyardCore

/// Optional failure injection shared by the `drop` and `file` targets, so tests can exercise
/// retries, backpressure, paused routes and the dead-letter path.
final class FailureInjection: Sendable {
    static let fields: [OptionField] = [
        OptionField(
            "failEvery", .int(min: 1), doc: "fail every Nth message written (counted over the target's lifetime, retries included)"),
        OptionField(
            "failure", .choice(["permanent", "retriable", "target"]), default: "permanent",
            doc:
                "how the injected failure looks: permanent (the message goes to the dead-letter target), retriable (retried with backoff), target (the whole batch fails as if the target were down)"
        ),
        OptionField("delay", .duration, doc: "wait this long before each batch (slows the target down, for backpressure)"),
    ]

    let failEvery: Int?
    let kind: ErrorKind
    let delay: Duration?
    let counter = Atomic<Int>(0)

    init(_ options: OptionValues) {
        failEvery = options.int("failEvery")
        switch options.string("failure") {
        case "retriable": kind = .retriable
        case "target": kind = .targetDown
        default: kind = .permanent
        }
        delay = options.duration("delay")
    }

    /// Waits the configured delay, then decides which messages fail. Throws for `target`.
    func apply(to messages: [Message]) async throws -> [(index: Int, error: ConnectorError)] {
        if let delay, delay > .zero { try await Task.sleep(for: delay) }
        guard let failEvery else { return [] }
        let start = counter.wrappingAdd(messages.count, ordering: .relaxed).oldValue
        var failures: [(index: Int, error: ConnectorError)] = []
        for index in 0..<messages.count where (start + index + 1) % failEvery == 0 {
            let message = messages[index]
            let error = ConnectorError(
                kind, "injected failure (failEvery \(failEvery)) for partition \(message.partition) offset \(message.offset)")
            if kind == .targetDown { throw error }
            failures.append((index, error))
        }
        return failures
    }
}
