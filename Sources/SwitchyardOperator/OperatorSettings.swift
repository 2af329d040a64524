/// How the operator runs.
public struct OperatorSettings: Sendable {
    /// The namespace whose Connectors it manages; nil: every namespace.
    public var namespace: String?
    /// The image of connector pods whose `spec.deployment.image` is not set.
    public var defaultImage: String
    /// Reconciles running at once (on different Connectors).
    public var workers = 2
    /// Every Connector is reconciled again this often, even without an event.
    public var resyncInterval: Duration = .seconds(300)
    /// A Connector with more than one pod is reconciled this often, to count its idle pods.
    public var memberInterval: Duration = .seconds(30)
    /// A failed reconcile is retried after this, doubling up to `maxRequeue`.
    public var initialRequeue: Duration = .milliseconds(250)
    public var maxRequeue: Duration = .seconds(60)
    /// Asked of the server for each watch; it ends the watch after about this long.
    public var watchTimeoutSeconds = 300

    public init(namespace: String?, defaultImage: String) {
        self.namespace = namespace
        self.defaultImage = defaultImage
    }
}
