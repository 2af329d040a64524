/// What went wrong and what the core does about it (ARCHITECTURE.md section 3, item 5).
public enum ErrorKind: String, Sendable {
    /// Timeouts, connection loss, throttling: retried with exponential backoff and full jitter.
    case retriable
    /// The target itself cannot work (authentication, missing table): the route pauses,
    /// readiness goes off, and the write is retried at the maximum backoff until it succeeds.
    case targetDown = "target"
    /// One message cannot be written (mapping, constraint): it goes to the dead-letter target.
    case permanent
}

/// An error raised by a connector, with the kind that tells the core how to react.
public struct ConnectorError: Error, Sendable, CustomStringConvertible {
    public var kind: ErrorKind
    public var message: String

    public init(_ kind: ErrorKind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public static func retriable(_ message: String) -> ConnectorError { .init(.retriable, message) }
    public static func targetDown(_ message: String) -> ConnectorError { .init(.targetDown, message) }
    public static func permanent(_ message: String) -> ConnectorError { .init(.permanent, message) }

    public var description: String { "\(kind.rawValue) error: \(message)" }
}
