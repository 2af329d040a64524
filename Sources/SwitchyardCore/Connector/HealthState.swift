import Synchronization

/// A connector's current health, shared between its writers and `/readyz`.
public final class HealthState: Sendable {
    private let value: Mutex<ConnectorHealth>

    public init(_ initial: ConnectorHealth = .connecting) {
        value = Mutex(initial)
    }

    public var current: ConnectorHealth { value.withLock { $0 } }

    /// Sets the health; returns whether it changed.
    @discardableResult
    public func set(_ health: ConnectorHealth) -> Bool {
        value.withLock { state in
            defer { state = health }
            return state != health
        }
    }

    /// The health a failed call leaves: `down` with the message after a target-down error,
    /// `connecting` after anything else (the next call reconnects). Returns whether it changed.
    @discardableResult
    public func failed(_ error: ConnectorError) -> Bool {
        set(error.kind == .targetDown ? .down(error.message) : .connecting)
    }
}
