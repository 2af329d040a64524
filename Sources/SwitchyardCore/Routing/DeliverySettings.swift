import Logging
import Metrics
import Synchronization

/// Delivery settings shared by the runners, replaceable on reload.
public final class DeliverySettings: Sendable {
    struct State {
        var retry: RetryPolicy
        var deadLetter: String?
        var runners: [String: TargetRunner] = [:]
    }

    let state: Mutex<State>

    public init(retry: RetryPolicy, deadLetter: String?) {
        state = Mutex(State(retry: retry, deadLetter: deadLetter))
    }

    public var retry: RetryPolicy { state.withLock { $0.retry } }

    public func update(retry: RetryPolicy, deadLetter: String?) {
        state.withLock {
            $0.retry = retry
            $0.deadLetter = deadLetter
        }
    }

    public func setRunners(_ runners: [String: TargetRunner]) {
        state.withLock { $0.runners = runners }
    }

    /// The runner of the dead-letter target, if one is configured.
    func deadLetterRunner() -> TargetRunner? {
        state.withLock { state in state.deadLetter.flatMap { state.runners[$0] } }
    }
}
