import Metrics
import Prometheus
import Synchronization
import SwitchyardCore

/// Bootstraps swift-metrics with the Prometheus registry that `/metrics` renders.
public enum MetricsSetup {
    public static let registry = PrometheusCollectorRegistry()
    static let done = Atomic<Bool>(false)

    public static func bootstrap() {
        guard !done.exchange(true, ordering: .relaxed) else { return }
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultValueHistogramBuckets = [1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000]
        factory.defaultDurationHistogramBuckets = [
            .microseconds(100), .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25),
            .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5), .seconds(30),
        ]
        MetricsSystem.bootstrap(factory)
    }

    public static func render() -> [UInt8] {
        ScrapeHooks.shared.run()
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return buffer
    }
}
