import Logging
import Metrics
import Synchronization
import SwitchyardConfig
import SwitchyardCore

/// The whole operator: leader election, and the controller while this replica leads.
public final class OperatorReplica: Sendable {
    public let client: KubeClient
    public let elector: LeaderElector
    public let controller: ConnectorController

    public init(client: KubeClient, settings: OperatorSettings, lease: LeaseSettings, registry: ConnectorRegistry, logger: Logger) {
        self.client = client
        let renderer = ConnectorRenderer(registry: registry, defaultImage: settings.defaultImage)
        self.elector = LeaderElector(client: client, settings: lease, logger: logger)
        self.controller = ConnectorController(
            client: client, reconciler: ConnectorReconciler(client: client, renderer: renderer, logger: logger), settings: settings,
            logger: logger)
    }

    /// Until cancelled; a held Lease is released on the way out.
    public func run() async {
        let controller = self.controller
        await elector.run { await controller.run() }
    }
}
