import Foundation
import SwitchyardConfig
import SwitchyardCore
import SwitchyardOperator
import Testing

/// A Connector with a Kafka source (literal brokers) and `spec.autoscaling`.
func scaledConnector(
    _ name: String, autoscaling: JSON = ["minReplicas": 2, "maxReplicas": 6, "lagPerReplica": 1000, "cooldown": "2m"],
    state: String = "running", replicas: Int? = nil, source: JSON? = nil
) -> JSON {
    var object: JSON = [
        "apiVersion": "switchyard.dev/v1alpha1", "kind": "Connector",
        "metadata": ["name": .string(name), "namespace": "shop"],
        "spec": [
            "sources": [
                source ?? [
                    "name": "orders",
                    "kafka": ["brokers": ["kafka-0.kafka:9092", "kafka-1.kafka:9092"], "topics": ["orders"], "group": "orders-archive"],
                ]
            ],
            "targets": [["name": "out", "drop": [:]]],
            "routes": [["from": [.string((source?["name"]?.string) ?? "orders")], "to": ["out"]]],
            "observability": ["listen": "0.0.0.0:8080"],
            "state": .string(state),
            "autoscaling": autoscaling,
        ],
    ]
    if let replicas { object[path: ["spec", "deployment", "replicas"]] = .int(replicas) }
    return object
}

@Suite("Operator autoscaling")
struct AutoscalingTests {
    let renderer = ConnectorRenderer(registry: registry, defaultImage: "switchyard:test")

    func rendered(_ object: JSON, keda: Bool = false) throws -> RenderedConnector {
        switch renderer.render(object, kedaAvailable: keda) {
        case .valid(let rendered): return rendered
        case .invalid(let messages):
            Issue.record("refused: \(messages)")
            throw CancellationError()
        }
    }

    func problems(_ object: JSON, keda: Bool = false) -> [String] {
        if case .invalid(let messages) = renderer.render(object, kedaAvailable: keda) { return messages }
        return []
    }

    @Test("without KEDA: an autoscaling/v2 HorizontalPodAutoscaler on the Connector's scale subresource")
    func horizontalPodAutoscaler() throws {
        let result = try rendered(scaledConnector("orders"))
        #expect(result.scalerType == .horizontalPodAutoscaler)
        let hpa = try #require(result.scaler)
        #expect(hpa["apiVersion"] == "autoscaling/v2")
        #expect(hpa["kind"] == "HorizontalPodAutoscaler")
        #expect(hpa[path: ["metadata", "name"]] == "orders")
        #expect(hpa[path: ["metadata", "ownerReferences"]]?.array?.first?["kind"] == "Connector")
        #expect(hpa[path: ["spec", "scaleTargetRef"]] == ["apiVersion": "switchyard.dev/v1alpha1", "kind": "Connector", "name": "orders"])
        #expect(hpa[path: ["spec", "minReplicas"]] == 2)
        #expect(hpa[path: ["spec", "maxReplicas"]] == 6)
        let metric = try #require(hpa[path: ["spec", "metrics"]]?.array?.first)
        #expect(metric["type"] == "External")
        #expect(metric[path: ["external", "metric", "name"]] == "switchyard_connector_lag_messages")
        #expect(metric[path: ["external", "metric", "selector", "matchLabels", "connector"]] == "orders")
        #expect(metric[path: ["external", "target"]] == ["type": "AverageValue", "averageValue": "1000"])
        #expect(hpa[path: ["spec", "behavior", "scaleDown", "stabilizationWindowSeconds"]] == 120)
        // Until the scaler writes replicas, the Deployment starts at minReplicas.
        #expect(result.deployment[path: ["spec", "replicas"]] == 2)
        // Replicas written by the scaler (or by hand) stay within the bounds.
        #expect(try rendered(scaledConnector("orders", replicas: 4)).deployment[path: ["spec", "replicas"]] == 4)
        #expect(try rendered(scaledConnector("orders", replicas: 40)).deployment[path: ["spec", "replicas"]] == 6)
        // The mounted document does not change with the scaler's settings.
        var other = scaledConnector("orders")
        other[path: ["spec", "autoscaling", "maxReplicas"]] = 9
        #expect(try rendered(other).documentHash == result.documentHash)
        #expect(!ConnectorRenderer.document(of: other).contains("autoscaling"))
    }

    @Test("with KEDA: a ScaledObject whose Kafka trigger reads the group's lag from the brokers")
    func scaledObjectWithKafkaTrigger() throws {
        var object = scaledConnector("orders")
        object[path: ["spec", "autoscaling", "scaleToZero"]] = true
        let result = try rendered(object, keda: true)
        #expect(result.scalerType == .scaledObject)
        let scaled = try #require(result.scaler)
        #expect(scaled["apiVersion"] == "keda.sh/v1alpha1")
        #expect(scaled["kind"] == "ScaledObject")
        #expect(scaled[path: ["spec", "scaleTargetRef", "kind"]] == "Connector")
        #expect(scaled[path: ["spec", "minReplicaCount"]] == 2)
        #expect(scaled[path: ["spec", "idleReplicaCount"]] == 0)
        #expect(scaled[path: ["spec", "maxReplicaCount"]] == 6)
        #expect(scaled[path: ["spec", "cooldownPeriod"]] == 120)
        let trigger = try #require(scaled[path: ["spec", "triggers"]]?.array?.first)
        #expect(trigger["type"] == "kafka")
        #expect(
            trigger["metadata"] == [
                "bootstrapServers": "kafka-0.kafka:9092,kafka-1.kafka:9092", "consumerGroup": "orders-archive", "topic": "orders",
                "lagThreshold": "1000", "offsetResetPolicy": "earliest",
            ])
        // Scaled to zero when idle: the Deployment may start with none.
        #expect(try rendered(scaledConnectorWithReplicas(object, 0), keda: true).deployment[path: ["spec", "replicas"]] == 0)
        // Asked for explicitly, KEDA is used even where discovery did not see it.
        var explicit = scaledConnector("orders")
        explicit[path: ["spec", "autoscaling", "scaler"]] = "keda"
        #expect(try rendered(explicit).scalerType == .scaledObject)
    }

    func scaledConnectorWithReplicas(_ object: JSON, _ replicas: Int) -> JSON {
        var copy = object
        copy[path: ["spec", "deployment", "replicas"]] = .int(replicas)
        return copy
    }

    @Test("with KEDA: sources whose lag only the pods know go through Prometheus")
    func prometheusTriggers() throws {
        // TLS settings: KEDA's own trigger would need the same certificates.
        let rabbit: JSON = [
            "name": "jobs", "rabbitmq": ["url": "amqps://rabbitmq.shop:5671/%2f", "queue": "jobs", "tls": ["ca": "/etc/rabbitmq/ca.pem"]],
        ]
        var object = scaledConnector("jobs", source: rabbit)
        #expect(problems(object, keda: true).contains { $0.hasPrefix("spec.autoscaling.prometheus:") && $0.contains("'jobs'") })
        object[path: ["spec", "autoscaling", "prometheus"]] = "http://prometheus.monitoring:9090"
        let trigger = try #require(try rendered(object, keda: true).scaler?[path: ["spec", "triggers"]]?.array?.first)
        #expect(trigger["type"] == "prometheus")
        #expect(trigger[path: ["metadata", "serverAddress"]] == "http://prometheus.monitoring:9090")
        #expect(trigger[path: ["metadata", "threshold"]] == "1000")
        // Every consumer of the queue reports the same depth: the largest, not the sum.
        #expect(
            trigger[path: ["metadata", "query"]]
                == #"max(switchyard_rabbitmq_queue_messages{namespace="shop",pod=~"jobs-[a-z0-9]+-[a-z0-9]+",source="jobs"}) or vector(0)"#)
    }

    @Test(
        "with KEDA: a RabbitMQ source gets KEDA's rabbitmq trigger on the queue's depth, its URL from the pods' Secret through a TriggerAuthentication, and can scale to zero"
    )
    func rabbitMQTriggers() throws {
        // A literal URL without a password goes into the trigger.
        let literal = scaledConnector(
            "jobs", source: ["name": "jobs", "rabbitmq": ["url": "amqp://rabbitmq.shop:5672/%2f", "queue": "jobs"]])
        let plain = try rendered(literal, keda: true)
        let trigger = try #require(plain.scaler?[path: ["spec", "triggers"]]?.array?.first)
        #expect(trigger["type"] == "rabbitmq")
        #expect(
            trigger["metadata"] == [
                "protocol": "amqp", "queueName": "jobs", "mode": "QueueLength", "value": "1000", "host": "amqp://rabbitmq.shop:5672/%2f",
            ])
        #expect(trigger["authenticationRef"] == nil)
        #expect(plain.triggerAuthentications.isEmpty)

        // The URL from a Secret, as the pods get it: KEDA reads the same Secret; no pod needed.
        var secret = scaledConnector("jobs", source: ["name": "jobs", "rabbitmq": ["url": "${env:RABBITMQ_URL}", "queue": "jobs"]])
        secret[path: ["spec", "deployment", "env"]] = [
            ["name": "RABBITMQ_URL", "valueFrom": ["secretKeyRef": ["name": "rabbit-credentials", "key": "url"]]]
        ]
        secret[path: ["spec", "autoscaling", "scaleToZero"]] = true
        let fromSecret = try rendered(secret, keda: true)
        let secretTrigger = try #require(fromSecret.scaler?[path: ["spec", "triggers"]]?.array?.first)
        #expect(secretTrigger["authenticationRef"] == ["name": "jobs-0"])
        #expect(secretTrigger[path: ["metadata", "host"]] == nil)
        #expect(fromSecret.scaler?[path: ["spec", "idleReplicaCount"]] == 0)
        let authentication = try #require(fromSecret.triggerAuthentications.first)
        #expect(authentication["kind"] == "TriggerAuthentication")
        #expect(authentication[path: ["metadata", "name"]] == "jobs-0")
        #expect(authentication[path: ["metadata", "ownerReferences"]]?.array?.count == 1)
        #expect(authentication["spec"] == ["secretTargetRef": [["parameter": "host", "name": "rabbit-credentials", "key": "url"]]])

        // A password in a literal URL is not copied into a ScaledObject: no scale to zero.
        var password = scaledConnector(
            "jobs", source: ["name": "jobs", "rabbitmq": ["url": "amqp://app:hunter2@rabbitmq.shop:5672/%2f", "queue": "jobs"]])
        password[path: ["spec", "autoscaling", "scaleToZero"]] = true
        let refusals = problems(password, keda: true)
        #expect(
            refusals.contains {
                $0.hasPrefix("spec.autoscaling.scaleToZero: source 'jobs': spec.sources[0].rabbitmq.url holds a password")
            }, "\(refusals)")
        #expect(!refusals.joined().contains("hunter2"))

        // A reference the pods' environment does not set.
        var unset = scaledConnector("jobs", source: ["name": "jobs", "rabbitmq": ["url": "${env:NOWHERE}", "queue": "jobs"]])
        unset[path: ["spec", "autoscaling", "scaleToZero"]] = true
        #expect(
            problems(unset, keda: true).contains { $0.hasPrefix("spec.sources[0].rabbitmq.url: environment variable NOWHERE is not set") },
            "\(problems(unset, keda: true))")

        // A URL from the environment that the pods get from a ConfigMap (envFrom) is checked
        // by the pods; the operator does not refuse it for its stand-in value.
        var fromConfigMap = scaledConnector("jobs", source: ["name": "jobs", "rabbitmq": ["url": "${env:RABBITMQ_URL}", "queue": "jobs"]])
        fromConfigMap[path: ["spec", "deployment", "envFrom"]] = [["configMapRef": ["name": "settings"]]]
        fromConfigMap[path: ["spec", "autoscaling", "prometheus"]] = "http://prometheus.monitoring:9090"
        #expect(problems(fromConfigMap, keda: true).isEmpty, "\(problems(fromConfigMap, keda: true))")
        // A literal URL is still checked as written.
        let wrong = scaledConnector("jobs", source: ["name": "jobs", "rabbitmq": ["url": "http://rabbitmq.shop:5672/", "queue": "jobs"]])
        #expect(
            problems(wrong, keda: true).contains { $0.hasPrefix("spec.sources[0].rabbitmq.url: the URL must start with amqp://") },
            "\(problems(wrong, keda: true))")
    }

    @Test("bad input is refused with the field's path")
    func refused() throws {
        var inverted = scaledConnector("orders")
        inverted[path: ["spec", "autoscaling", "minReplicas"]] = 8
        #expect(
            problems(inverted).contains { $0.hasPrefix("spec.autoscaling.minReplicas:") && $0.contains("above maxReplicas (6)") },
            "\(problems(inverted))")

        var zero = scaledConnector("orders")
        zero[path: ["spec", "autoscaling", "lagPerReplica"]] = 0
        #expect(problems(zero).contains { $0.hasPrefix("spec.autoscaling.lagPerReplica:") }, "\(problems(zero))")

        let generated = scaledConnector("numbers", source: ["name": "numbers", "generate": ["count": 10]])
        #expect(
            problems(generated).contains {
                $0.hasPrefix("spec.autoscaling.lagPerReplica:") && $0.contains("'numbers' (generate) reports no lag")
            }, "\(problems(generated))")

        var hpaToZero = scaledConnector("orders")
        hpaToZero[path: ["spec", "autoscaling", "scaleToZero"]] = true
        #expect(
            problems(hpaToZero).contains { $0.hasPrefix("spec.autoscaling.scaleToZero:") && $0.contains("KEDA") }, "\(problems(hpaToZero))")

        var referenced = scaledConnector(
            "orders", source: ["name": "orders", "kafka": ["brokers": ["${env:BROKERS:-k:9092}"], "topics": ["orders"], "group": "g"]])
        referenced[path: ["spec", "autoscaling", "scaleToZero"]] = true
        #expect(
            problems(referenced, keda: true).contains { $0.hasPrefix("spec.autoscaling.scaleToZero:") && $0.contains("'orders'") },
            "\(problems(referenced, keda: true))")

        let missing = scaledConnector("orders", autoscaling: ["minReplicas": 1])
        #expect(problems(missing).contains { $0.hasPrefix("spec.autoscaling.maxReplicas:") }, "\(problems(missing))")
        #expect(problems(missing).contains { $0.hasPrefix("spec.autoscaling.lagPerReplica:") }, "\(problems(missing))")
    }

    @Test("paused or stopped: no scaler, so nothing scales the Connector back up")
    func pausedHasNoScaler() throws {
        #expect(try rendered(scaledConnector("orders", state: "paused")).scaler == nil)
        #expect(try rendered(scaledConnector("orders", state: "paused")).deployment[path: ["spec", "replicas"]] == 0)
        #expect(try rendered(scaledConnector("orders", state: "stopped"), keda: true).scaler == nil)
    }

    @Test(
        "the operator writes the scaler the cluster has, switches when KEDA appears, and removes it with autoscaling, on pause and with the Connector's owner reference"
    )
    func reconcilesTheScaler() async throws {
        try await withHarness { harness in
            let fake = harness.fake
            let created = fake.create(.connector, "shop", scaledConnector("orders"))
            let uid = created[path: ["metadata", "uid"]]!.string!
            _ = try harness.startOperator(identity: "a")
            try await eventually("the HorizontalPodAutoscaler") { fake.object(.horizontalPodAutoscaler, "shop", "orders") != nil }
            let hpa = try #require(fake.object(.horizontalPodAutoscaler, "shop", "orders"))
            #expect(hpa[path: ["metadata", "ownerReferences"]]?.array?.first?["uid"]?.string == uid)
            #expect(fake.object(.deployment, "shop", "orders")?[path: ["spec", "replicas"]] == 2)

            // The scaler writes replicas through the scale subresource (spec.deployment.replicas).
            _ = fake.update(.connector, "shop", "orders") { $0[path: ["spec", "deployment", "replicas"]] = 5 }
            try await eventually("the Deployment follows the scaler") {
                fake.object(.deployment, "shop", "orders")?[path: ["spec", "replicas"]] == 5
            }

            // Changing the bounds updates the scaler.
            _ = fake.update(.connector, "shop", "orders") { $0[path: ["spec", "autoscaling", "maxReplicas"]] = 12 }
            try await eventually("the new bound") {
                fake.object(.horizontalPodAutoscaler, "shop", "orders")?[path: ["spec", "maxReplicas"]] == 12
            }

            // Paused: the scaler goes (it would scale the Connector up again), the pods go.
            _ = fake.update(.connector, "shop", "orders") { $0[path: ["spec", "state"]] = "paused" }
            try await eventually("no scaler while paused") { fake.object(.horizontalPodAutoscaler, "shop", "orders") == nil }
            try await eventually("scaled to zero") { fake.object(.deployment, "shop", "orders")?[path: ["spec", "replicas"]] == 0 }

            // Running again, KEDA installed and asked for explicitly: the scaler changes kind.
            fake.setServesKEDA(true)
            _ = fake.update(.connector, "shop", "orders") {
                $0[path: ["spec", "state"]] = "running"
                $0[path: ["spec", "autoscaling", "scaler"]] = "keda"
            }
            try await eventually("the ScaledObject") { fake.object(.scaledObject, "shop", "orders") != nil }
            try await eventually("the HorizontalPodAutoscaler is gone") { fake.object(.horizontalPodAutoscaler, "shop", "orders") == nil }
            #expect(fake.object(.scaledObject, "shop", "orders")?[path: ["spec", "triggers"]]?.array?.first?["type"] == "kafka")

            // Autoscaling removed: the scaler goes, replicas stay as they were written.
            _ = fake.update(.connector, "shop", "orders") { $0[path: ["spec", "autoscaling"]] = nil }
            try await eventually("no scaler without autoscaling") { fake.object(.scaledObject, "shop", "orders") == nil }
            #expect(fake.object(.deployment, "shop", "orders")?[path: ["spec", "replicas"]] == 5)
        }
    }

    @Test("the TriggerAuthentication of a RabbitMQ trigger is written with the ScaledObject, owned, and removed when no trigger needs it")
    func reconcilesTriggerAuthentication() async throws {
        try await withHarness { harness in
            let fake = harness.fake
            fake.setServesKEDA(true)
            var object = scaledConnector("jobs", source: ["name": "jobs", "rabbitmq": ["url": "${env:RABBITMQ_URL}", "queue": "jobs"]])
            object[path: ["spec", "deployment", "env"]] = [
                ["name": "RABBITMQ_URL", "valueFrom": ["secretKeyRef": ["name": "rabbit-credentials", "key": "url"]]]
            ]
            object[path: ["spec", "autoscaling", "scaleToZero"]] = true
            let uid = fake.create(.connector, "shop", object)[path: ["metadata", "uid"]]!.string!
            _ = try harness.startOperator(identity: "a")
            try await eventually("the ScaledObject and its TriggerAuthentication") {
                fake.object(.scaledObject, "shop", "jobs") != nil && fake.object(.triggerAuthentication, "shop", "jobs-0") != nil
            }
            let authentication = try #require(fake.object(.triggerAuthentication, "shop", "jobs-0"))
            #expect(authentication[path: ["metadata", "ownerReferences"]]?.array?.first?["uid"]?.string == uid)
            #expect(authentication[path: ["spec", "secretTargetRef"]]?.array?.first?["name"] == "rabbit-credentials")

            // A literal URL: the trigger carries it, the TriggerAuthentication goes.
            _ = fake.update(.connector, "shop", "jobs") {
                $0[path: ["spec", "sources"]] = [["name": "jobs", "rabbitmq": ["url": "amqp://rabbitmq.shop:5672/%2f", "queue": "jobs"]]]
            }
            try await eventually("no TriggerAuthentication without a Secret") {
                fake.object(.triggerAuthentication, "shop", "jobs-0") == nil
            }
            #expect(
                fake.object(.scaledObject, "shop", "jobs")?[path: ["spec", "triggers"]]?.array?.first?[path: ["metadata", "host"]]
                    == "amqp://rabbitmq.shop:5672/%2f")
        }
    }

    @Test("a cluster that serves KEDA (found by discovery) gets a ScaledObject")
    func discoversKEDA() async throws {
        try await withHarness { harness in
            let fake = harness.fake
            fake.setServesKEDA(true)
            _ = fake.create(.connector, "shop", scaledConnector("orders"))
            _ = try harness.startOperator(identity: "a")
            try await eventually("the ScaledObject") { fake.object(.scaledObject, "shop", "orders") != nil }
            #expect(fake.object(.horizontalPodAutoscaler, "shop", "orders") == nil)
            #expect(fake.object(.scaledObject, "shop", "orders")?[path: ["spec", "maxReplicaCount"]] == 6)
        }
    }
}
