import Metrics

/// The operator's metrics, on its own `/metrics` endpoint (the runtime's Prometheus registry
/// and HTTP server, see `OperatorService`).
public enum OperatorMetricNames {
    /// Labels `result` (`success`, `error`).
    public static let reconciles = "switchyard_operator_reconciles_total"
    /// Labels `kind` (`api`, `invalid_spec`): failed reconciles and Connectors refused as invalid.
    public static let errors = "switchyard_operator_errors_total"
    public static let queueDepth = "switchyard_operator_queue_depth"
    /// 1 while this replica holds the leader Lease.
    public static let leader = "switchyard_operator_leader"
    /// Labels `resource`: lists after a watch expired (410) or failed.
    public static let relists = "switchyard_operator_relists_total"
    /// Labels `resource`, `type`.
    public static let watchEvents = "switchyard_operator_watch_events_total"
    public static let reconcileSeconds = "switchyard_operator_reconcile_seconds"
}

struct OperatorMetrics: Sendable {
    let reconcileSuccess = Counter(label: OperatorMetricNames.reconciles, dimensions: [("result", "success")])
    let reconcileError = Counter(label: OperatorMetricNames.reconciles, dimensions: [("result", "error")])
    let apiErrors = Counter(label: OperatorMetricNames.errors, dimensions: [("kind", "api")])
    let invalidSpecs = Counter(label: OperatorMetricNames.errors, dimensions: [("kind", "invalid_spec")])
    let queueDepth = Gauge(label: OperatorMetricNames.queueDepth)
    let leader = Gauge(label: OperatorMetricNames.leader)
    let reconcileSeconds = Metrics.Timer(label: OperatorMetricNames.reconcileSeconds)

    func relist(_ resource: String) {
        Counter(label: OperatorMetricNames.relists, dimensions: [("resource", resource)]).increment()
    }

    func watchEvent(_ resource: String, _ type: WatchEvent.Kind) {
        Counter(label: OperatorMetricNames.watchEvents, dimensions: [("resource", resource), ("type", type.rawValue)]).increment()
    }
}
