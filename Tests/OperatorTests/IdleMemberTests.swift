import Foundation
import ServiceLifecycle
import SwitchyardCore
import SwitchyardOperator
@testable import SwitchyardRuntime
import Testing

/// `status.idleReplicas`: pods whose every source holds no share of the work, read from their
/// `/status`. Here the pods' endpoints are the runtime's own HTTP server with a fixed report;
/// `KafkaScaleOutTests` shows real group members reporting `idle` to the same probe.
@Suite struct IdleMemberTests {
    static func report(idle: Bool) -> StatusReport {
        let source = StatusReport.Source(
            name: "in", kind: "kafka", state: "running", reason: nil, messages: 0, bytes: 0, acknowledged: 0, filtered: 0,
            ratePerSecond: nil, inflight: 0, backlog: 0, lag: 0, oldestUnackedSeconds: 0, notes: [], idle: idle, lastError: nil)
        return StatusReport(
            name: "orders", generation: 1, ready: true, reasons: [], draining: false, uptimeSeconds: 1,
            memory: .init(limitBytes: 1, usedBytes: 0), inflight: .init(messages: 0, bytes: 0),
            sources: [source], routes: [], targets: [], tap: .init(enabled: false, attached: []))
    }

    static func pod(_ name: String, port: Int, phase: String = "Running") -> JSON {
        [
            "apiVersion": "v1", "kind": "Pod",
            "metadata": [
                "name": .string(name), "namespace": "shop",
                "labels": [
                    "app.kubernetes.io/name": "switchyard", "app.kubernetes.io/instance": "orders",
                    "app.kubernetes.io/component": "connector",
                ],
            ],
            "spec": ["containers": [["name": "connector", "ports": [["name": "http", "containerPort": .int(port)]]]]],
            "status": ["phase": .string(phase), "podIP": "127.0.0.1"],
        ]
    }

    @Test("a Connector with several pods counts those whose /status says every source is idle; one pod is never probed")
    func countsIdlePods() async throws {
        // Three pods answer (one idle); a fourth has an address but nothing listens.
        var ports: [Int] = []
        var servers: [any Service] = []
        for idle in [false, true, false] {
            let port = freePort()
            ports.append(port)
            servers.append(
                HealthServer(
                    host: "127.0.0.1", port: port,
                    endpoints: HealthEndpoints(readiness: { (true, []) }, metrics: { [] }, status: { Self.report(idle: idle) }),
                    logger: testLogger))
        }
        let group = ServiceGroup(services: servers, logger: testLogger)
        let running = Task { try await group.run() }
        defer { running.cancel() }
        try await withHarness { harness in
            let fake = harness.fake
            // Pods as the kubelet shows them (status written through the status subresource).
            var pods = ports.enumerated().map { Self.pod("orders-\($0.offset)", port: $0.element) }
            pods.append(Self.pod("orders-silent", port: freePort()))
            pods.append(Self.pod("orders-pending", port: freePort(), phase: "Pending"))
            for pod in pods {
                let name = pod[path: ["metadata", "name"]]!.string!
                fake.create(.pod, "shop", pod)
                fake.setStatus(.pod, "shop", name, pod["status"]!)
            }
            fake.create(.connector, "shop", connector("orders", replicas: 4))
            _ = try harness.startOperator(identity: "a")
            try await eventually("the Deployment") { fake.object(.deployment, "shop", "orders") != nil }
            fake.rollOutDeployments()
            try await eventually("one idle pod in the status") {
                fake.object(.connector, "shop", "orders")?[path: ["status", "idleReplicas"]] == 1
            }
            try await eventually("the Ready condition says why") {
                let message = fake.object(.connector, "shop", "orders")?.condition("Ready")?["message"]?.string ?? ""
                return message.contains("1 idle: it holds no partition") && message.contains("1 of 4 running pods did not answer /status")
            }

            // Scaled to one pod: nothing to count, the field goes.
            _ = fake.update(.connector, "shop", "orders") { $0[path: ["spec", "deployment", "replicas"]] = 1 }
            try await eventually("the Deployment follows") { fake.object(.deployment, "shop", "orders")?[path: ["spec", "replicas"]] == 1 }
            fake.rollOutDeployments()
            try await eventually("no idle count with one pod") {
                let connector = fake.object(.connector, "shop", "orders")
                return connector?[path: ["status", "readyReplicas"]] == 1 && connector?[path: ["status", "idleReplicas"]] == nil
            }
        }
        await group.triggerGracefulShutdown()
        _ = try? await running.value
    }

    @Test("the probe asks only running pods with an address, on their port named http")
    func statusAddresses() {
        #expect(MemberProbe.statusURL(Self.pod("a", port: 9090)) == "http://127.0.0.1:9090/status")
        #expect(MemberProbe.statusURL(Self.pod("a", port: 9090, phase: "Pending")) == nil)
        var leaving = Self.pod("a", port: 9090)
        leaving[path: ["metadata", "deletionTimestamp"]] = "2026-12-03T00:00:00Z"
        #expect(MemberProbe.statusURL(leaving) == nil)
        var six = Self.pod("a", port: 9090)
        six[path: ["status", "podIP"]] = "fd00::7"
        #expect(MemberProbe.statusURL(six) == "http://[fd00::7]:9090/status")
    }
}
