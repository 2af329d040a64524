import Logging
import Metrics
import Synchronization
import SwitchyardConfig
import SwitchyardCore

/// Watches Connectors and the Deployments and Jobs it owns, and reconciles each Connector from a work
/// queue. Runs until cancelled.
public final class ConnectorController: Sendable {
    let client: KubeClient
    let reconciler: ConnectorReconciler
    let settings: OperatorSettings
    let logger: Logger
    let metrics = OperatorMetrics()
    let known = Mutex<Set<String>>([])

    public init(client: KubeClient, reconciler: ConnectorReconciler, settings: OperatorSettings, logger: Logger) {
        self.client = client
        self.reconciler = reconciler
        self.settings = settings
        self.logger = logger
    }

    public func run() async {
        let metrics = self.metrics
        let queue = WorkQueue(initialBackoff: settings.initialRequeue, maxBackoff: settings.maxRequeue) { metrics.queueDepth.record($0) }
        let connectors = Informer(
            client: client, type: .connector, namespace: settings.namespace, labelSelector: nil, logger: logger,
            watchTimeoutSeconds: settings.watchTimeoutSeconds
        ) { [self] type, object in
            guard let key = Informer.key(object) else { return }
            self.known.withLock { keys in
                if type == .deleted { keys.remove(key) } else { keys.insert(key) }
            }
            await queue.add(key)
        }
        // Deployment status (ready pods, rollout) and a cutover Job's end are reported on the
        // owning Connector.
        let owned = [ResourceType.deployment, .job].map { type in
            Informer(
                client: client, type: type, namespace: settings.namespace,
                labelSelector: "\(OperatorLabels.managedBy)=\(OperatorLabels.managedByValue)", logger: logger,
                watchTimeoutSeconds: settings.watchTimeoutSeconds
            ) { _, object in
                guard let namespace = object[path: ["metadata", "namespace"]]?.string else { return }
                for owner in object[path: ["metadata", "ownerReferences"]]?.array ?? []
                where owner["controller"]?.bool == true && owner["kind"]?.string == "Connector" {
                    if let name = owner["name"]?.string { await queue.add("\(namespace)/\(name)") }
                }
            }
        }
        logger.info(
            "reconciling Connectors", metadata: ["namespace": "\(settings.namespace ?? "(all)")", "workers": "\(settings.workers)"])
        await withTaskCancellationHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await connectors.run() }
                for informer in owned { group.addTask { await informer.run() } }
                for _ in 0..<max(1, settings.workers) {
                    group.addTask { await self.work(queue) }
                }
                group.addTask {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: self.settings.resyncInterval)
                        if Task.isCancelled { break }
                        for key in self.known.withLock({ $0 }) { await queue.add(key) }
                    }
                }
                group.addTask {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: self.settings.memberInterval)
                        if Task.isCancelled { break }
                        let known = self.known.withLock { $0 }
                        let again = self.reconciler.multiPod.withLock { $0 }.union(self.reconciler.waiting.withLock { $0 })
                        for key in again where known.contains(key) { await queue.add(key) }
                    }
                }
                await group.waitForAll()
            }
        } onCancel: {
            Task { await queue.shutDown() }
        }
    }

    func work(_ queue: WorkQueue) async {
        while let key = await queue.next() {
            let parts = key.split(separator: "/", maxSplits: 1).map(String.init)
            guard parts.count == 2 else {
                await queue.done(key, failed: false)
                continue
            }
            let start = ContinuousClock.now
            do {
                try await reconciler.reconcile(namespace: parts[0], name: parts[1])
                metrics.reconcileSuccess.increment()
                await queue.done(key, failed: false)
            } catch {
                if Task.isCancelled {
                    await queue.done(key, failed: false)
                    return
                }
                metrics.reconcileError.increment()
                metrics.apiErrors.increment()
                let attempts = await queue.failureCount(key) + 1
                logger.warning(
                    "reconcile failed; retrying with backoff",
                    metadata: ["connector": "\(key)", "attempt": "\(attempts)", "error": "\(error)"])
                await queue.done(key, failed: true)
            }
            metrics.reconcileSeconds.recordElapsed(since: start)
        }
    }
}

extension Metrics.Timer {
    func recordElapsed(since start: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - start
        recordNanoseconds(Int64(elapsed.components.seconds) * 1_000_000_000 + Int64(elapsed.components.attoseconds / 1_000_000_000))
    }
}
