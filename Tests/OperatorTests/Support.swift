import BuiltinConnectors
import KafkaConnector
import RabbitMQConnector
import Foundation
import Logging
import NIOSSL
import SwitchyardCore
import SwitchyardOperator
import SwitchyardRuntime
import Testing

let registry = ConnectorRegistry([BuiltinConnectors.family, KafkaConnectors.family, RabbitMQConnectors.family])
let testLogger: Logger = {
    var logger = Logger(label: "operator-test")
    logger.logLevel = ProcessInfo.processInfo.environment["OPERATOR_TEST_LOG"] == nil ? .critical : .debug
    return logger
}()

/// A fake API server and the clients made for it; everything is closed when the body ends.
final class Harness: @unchecked Sendable {
    let fake: FakeKubernetes
    let url: String
    var clients: [KubeClient] = []
    var running: [Task<Void, Never>] = []

    init(fake: FakeKubernetes, url: String) {
        self.fake = fake
        self.url = url
    }

    func client(token: String? = nil) throws -> KubeClient {
        let client = try KubeClient(config: ClusterConfig(server: url, token: token), logger: testLogger, requestTimeout: .seconds(5))
        clients.append(client)
        return client
    }

    /// An operator with a fast Lease (2 s, renewed every 100 ms), started at once; stopped when the harness closes.
    func startOperator(identity: String, namespace: String? = nil, token: String? = nil, client: KubeClient? = nil) throws
        -> OperatorReplica
    {
        let theOperator = try makeOperator(identity: identity, namespace: namespace, token: token, client: client)
        running.append(Task { await theOperator.run() })
        return theOperator
    }

    func makeOperator(identity: String, namespace: String? = nil, token: String? = nil, client: KubeClient? = nil) throws -> OperatorReplica
    {
        var settings = OperatorSettings(namespace: namespace, defaultImage: "switchyard:test")
        settings.initialRequeue = .milliseconds(50)
        settings.maxRequeue = .milliseconds(500)
        var lease = LeaseSettings(name: "switchyard-operator", namespace: "switchyard-system", identity: identity)
        lease.leaseDuration = .seconds(2)
        lease.renewDeadline = .milliseconds(1500)
        lease.retryPeriod = .milliseconds(100)
        return OperatorReplica(
            client: try client ?? self.client(token: token), settings: settings, lease: lease, registry: registry, logger: testLogger)
    }

    func close() async {
        for task in running { task.cancel() }
        for task in running { await task.value }
        await fake.stop()
        for client in clients { await client.shutdown() }
    }
}

func withHarness(tokens: Set<String>? = nil, tls: NIOSSLContext? = nil, _ body: (Harness) async throws -> Void) async throws {
    MetricsSetup.bootstrap()
    let fake = FakeKubernetes(tokens: tokens)
    let harness = Harness(fake: fake, url: try await fake.start(tls: tls))
    do {
        try await body(harness)
    } catch {
        await harness.close()
        throw error
    }
    await harness.close()
}

struct TimedOut: Error, CustomStringConvertible {
    var what: String
    var description: String { "timed out waiting for: \(what)" }
}

/// Polls `condition` every 20 ms until it holds; fails the test after `timeout`.
func eventually(
    _ what: String, timeout: Duration = .seconds(10), sourceLocation: SourceLocation = #_sourceLocation,
    _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    Issue.record("timed out waiting for: \(what)", sourceLocation: sourceLocation)
    throw TimedOut(what: what)
}

/// A Connector with the built-in connectors: a generator into a file.
func connector(_ name: String, namespace: String = "shop", count: Int = 10, state: String = "running", replicas: Int = 2) -> JSON {
    [
        "apiVersion": "switchyard.dev/v1alpha1", "kind": "Connector",
        "metadata": ["name": .string(name), "namespace": .string(namespace)],
        "spec": [
            "sources": [["name": "gen", "generate": ["count": .int(count), "batchSize": "${env:BATCH:-100}"]]],
            "targets": [["name": "out", "file": ["path": "/tmp/out.ndjson"]]],
            "routes": [["from": ["gen"], "to": ["out"]]],
            "delivery": ["drainTimeout": "30s"],
            "observability": ["listen": "0.0.0.0:9090"],
            "state": .string(state),
            "deployment": [
                "replicas": .int(replicas),
                "image": "example.com/switchyard:1.2.3",
                "resources": ["requests": ["cpu": "100m", "memory": "128Mi"], "limits": ["memory": "256Mi"]],
                "env": [
                    ["name": "BATCH", "value": "500"],
                    ["name": "TOKEN", "valueFrom": ["secretKeyRef": ["name": "connector-secrets", "key": "token"]]],
                ],
                "envFrom": [["configMapRef": ["name": "shared-settings"]]],
                "serviceAccountName": "connector-runner",
                "nodeSelector": ["pool": "connectors"],
                "tolerations": [["key": "dedicated", "operator": "Equal", "value": "connectors", "effect": "NoSchedule"]],
                "affinity": [
                    "podAntiAffinity": [
                        "preferredDuringSchedulingIgnoredDuringExecution": [
                            ["weight": 100, "podAffinityTerm": ["topologyKey": "kubernetes.io/hostname"]]
                        ]
                    ]
                ],
            ],
        ],
    ]
}

extension FakeKubernetes {
    /// The document hash on a Deployment's pod template.
    func podTemplateHash(_ namespace: String, _ name: String) -> String? {
        object(.deployment, namespace, name)?[path: ["spec", "template", "metadata", "annotations", "switchyard.dev/document-hash"]]?.string
    }
}

extension Harness {
    /// Connector `shop/orders` and an operator, until its Deployment exists.
    func runOrders(sourceLocation: SourceLocation = #_sourceLocation) async throws {
        fake.create(.connector, "shop", connector("orders"))
        _ = try startOperator(identity: "a")
        try await eventually("the Deployment", sourceLocation: sourceLocation) { self.fake.object(.deployment, "shop", "orders") != nil }
    }
}

extension JSON {
    func condition(_ type: String) -> JSON? {
        self[path: ["status", "conditions"]]?.array?.first { $0["type"]?.string == type }
    }
}
