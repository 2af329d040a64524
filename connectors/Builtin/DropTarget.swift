import Synchronization
import SwitchyardCore

/// The `drop` target: confirms every message without writing it anywhere (benchmarks, tests).
final class DropTarget: Target {
    static let kind = TargetKind(
        kind: "drop",
        summary: "confirms and discards every message (benchmarks); optional failure injection",
        options: ObjectSchema(doc: "Discards messages.", FailureInjection.fields),
        make: { setup in DropTarget(setup) }
    )

    let failures: FailureInjection

    init(_ setup: ConnectorSetup) {
        failures = FailureInjection(setup.options)
    }

    func write(_ messages: [Message]) async throws -> WriteResult {
        WriteResult(failures: try await failures.apply(to: messages))
    }
}
