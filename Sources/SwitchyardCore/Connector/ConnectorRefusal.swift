/// The systems a connector works with contradict its document (a target topic with fewer
/// partitions than the document needs, a broker that refuses to create a topic as asked):
/// retrying cannot help until someone changes one or the other. Thrown by `prepare` before the
/// sources start, it stops `switchyard run` (exit status 1); thrown by `open` later (after a
/// reload), the target counts as stopped and `open` is retried.
public struct ConnectorRefusal: Error, Sendable, CustomStringConvertible {
    public var message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}
