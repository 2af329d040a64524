import SwitchyardConfig
import SwitchyardCore

/// The scaler `spec.autoscaling` asks for, as the operator renders it: a KEDA ScaledObject when
/// the cluster serves KEDA (or `scaler: keda`), otherwise an autoscaling/v2
/// HorizontalPodAutoscaler. Both scale the Connector itself through its scale subresource
/// (`spec.deployment.replicas`), so the operator and the scaler never fight over the
/// Deployment. Pure: built from the Connector and the validated document.
struct ScalerPlan: Sendable {
    struct Problems: Error {
        var messages: [String]
    }

    var type: ResourceType
    var name: String
    var minReplicas: Int
    var maxReplicas: Int
    var lagPerReplica: Int
    var scaleToZero: Bool
    var cooldownSeconds: Int
    /// KEDA triggers, one per source.
    var triggers: [JSON]

    /// The fewest pods the scaler may leave: 0 with scaleToZero.
    var lowestReplicas: Int { scaleToZero ? 0 : minReplicas }

    /// The external metric the HorizontalPodAutoscaler reads (served by a metrics adapter from
    /// the pods' lag series; docs/scaling.md).
    static let externalMetric = "switchyard_connector_lag_messages"

    static func make(_ autoscaling: JSON, spec: JSON, document: ConnectorDocument, name: String, namespace: String, kedaAvailable: Bool) -> Result<ScalerPlan, Problems> {
        var problems: [String] = []
        let choice = autoscaling["scaler"]?.string ?? "auto"
        let keda = choice == "keda" || (choice == "auto" && kedaAvailable)
        let scaleToZero = autoscaling["scaleToZero"]?.bool ?? false
        if scaleToZero && !keda {
            problems.append("spec.autoscaling.scaleToZero: needs KEDA (keda.sh/v1alpha1), which this cluster does not serve; a HorizontalPodAutoscaler keeps at least one pod")
        }
        let cooldown = document.spec.object("autoscaling")?.duration("cooldown") ?? .seconds(300)
        let cooldownSeconds = max(0, Int(cooldown.components.seconds) + (cooldown.components.attoseconds > 0 ? 1 : 0))
        var plan = ScalerPlan(
            type: keda ? .scaledObject : .horizontalPodAutoscaler, name: name,
            minReplicas: autoscaling["minReplicas"]?.int ?? 1, maxReplicas: autoscaling["maxReplicas"]?.int ?? 1,
            lagPerReplica: autoscaling["lagPerReplica"]?.int ?? 1, scaleToZero: scaleToZero, cooldownSeconds: cooldownSeconds, triggers: [])
        if keda {
            let sources = spec["sources"]?.array ?? []
            for (index, source) in document.sources.enumerated() {
                let raw = index < sources.count ? sources[index][source.kind] ?? .object([:]) : .object([:])
                switch plan.trigger(for: source, raw: raw, index: index, autoscaling: autoscaling, namespace: namespace) {
                case .success(let trigger): plan.triggers.append(trigger)
                case .failure(let problem): problems += problem.messages
                }
            }
        }
        return problems.isEmpty ? .success(plan) : .failure(Problems(messages: problems))
    }

    /// The pods of this Connector's Deployment (NAME-HASH-ID) in Prometheus label terms.
    func podSelector(namespace: String) -> String {
        "namespace=\"\(namespace)\",pod=~\"\(name)-[a-z0-9]+-[a-z0-9]+\""
    }

    /// A KEDA trigger for one source: Kafka's own lag (exact, and seen with no pod running)
    /// when the brokers are literal and no TLS or SASL is set; otherwise the pods' lag series
    /// through Prometheus.
    func trigger(for source: ConnectorEntry, raw: JSON, index: Int, autoscaling: JSON, namespace: String) -> Result<JSON, Problems> {
        let threshold = JSON.string(String(lagPerReplica))
        if source.kind == "kafka" {
            let brokers = (raw["brokers"]?.array ?? []).compactMap(\.string)
            let literal = !brokers.isEmpty && brokers.allSatisfy { !$0.contains("${") }
            let secured = raw["tls"] != nil || raw["sasl"] != nil
            if literal && !secured, let group = raw["group"]?.string, !group.contains("${") {
                var metadata: [String: JSON] = [
                    "bootstrapServers": .string(brokers.joined(separator: ",")), "consumerGroup": .string(group),
                    "lagThreshold": threshold, "offsetResetPolicy": .string(raw["startOffset"]?.string ?? "earliest"),
                ]
                let topics = (raw["topics"]?.array ?? []).compactMap(\.string)
                if topics.count == 1, !topics[0].hasPrefix("^"), !topics[0].contains("${") { metadata["topic"] = .string(topics[0]) }
                return .success(["type": "kafka", "name": .string(source.name), "metadata": .object(metadata)])
            }
            if scaleToZero {
                return .failure(Problems(messages: ["spec.autoscaling.scaleToZero: source '\(source.name)' has brokers or a group given by reference, or TLS or SASL settings, so KEDA cannot read its lag from the brokers while no pod runs"]))
            }
        }
        guard let server = autoscaling["prometheus"]?.string, !server.isEmpty else {
            return .failure(Problems(messages: ["spec.autoscaling.prometheus: needed for source '\(source.name)' (\(source.kind)): KEDA reads its lag from the pods' metrics through Prometheus; set the server's address (http://host:port)"]))
        }
        let query: String
        if source.kind == "rabbitmq" {
            // Every pod consuming the queue reports the same depth.
            query = "max(switchyard_rabbitmq_queue_messages{\(podSelector(namespace: namespace)),source=\"\(source.name)\"}) or vector(0)"
        } else {
            query = "sum(switchyard_source_lag_messages{\(podSelector(namespace: namespace)),source=\"\(source.name)\"}) or vector(0)"
        }
        return .success([
            "type": "prometheus", "name": .string(source.name),
            "metadata": ["serverAddress": .string(server), "query": .string(query), "threshold": threshold],
        ])
    }

    /// The object, with the operator's metadata (name, namespace, labels, owner).
    func object(metadata: JSON) -> JSON {
        let target: JSON = ["apiVersion": .string(ResourceType.connector.apiVersion), "kind": "Connector", "name": .string(name)]
        if type == .scaledObject {
            var spec: JSON = [
                "scaleTargetRef": target,
                "minReplicaCount": .int(minReplicas), "maxReplicaCount": .int(maxReplicas),
                "cooldownPeriod": .int(cooldownSeconds), "pollingInterval": 15,
                "triggers": .array(triggers),
            ]
            if scaleToZero { spec["idleReplicaCount"] = 0 }
            return ["apiVersion": .string(ResourceType.scaledObject.apiVersion), "kind": "ScaledObject", "metadata": metadata, "spec": spec]
        }
        let metric: JSON = [
            "type": "External",
            "external": [
                "metric": ["name": .string(Self.externalMetric), "selector": ["matchLabels": ["connector": .string(name)]]],
                "target": ["type": "AverageValue", "averageValue": .string(String(lagPerReplica))],
            ],
        ]
        return [
            "apiVersion": .string(ResourceType.horizontalPodAutoscaler.apiVersion), "kind": "HorizontalPodAutoscaler", "metadata": metadata,
            "spec": [
                "scaleTargetRef": target,
                "minReplicas": .int(minReplicas), "maxReplicas": .int(maxReplicas),
                "metrics": [metric],
                // The API allows at most an hour.
                "behavior": ["scaleDown": ["stabilizationWindowSeconds": .int(min(cooldownSeconds, 3600))]],
            ],
        ]
    }
}
