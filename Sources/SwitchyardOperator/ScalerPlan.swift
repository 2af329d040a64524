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
    /// KEDA TriggerAuthentications the triggers refer to (a RabbitMQ URL from a Secret), by name.
    var authentications: [(name: String, spec: JSON)] = []

    /// The fewest pods the scaler may leave: 0 with scaleToZero.
    var lowestReplicas: Int { scaleToZero ? 0 : minReplicas }

    /// The external metric the HorizontalPodAutoscaler reads (served by a metrics adapter from
    /// the pods' lag series; docs/scaling.md).
    static let externalMetric = "switchyard_connector_lag_messages"

    static func make(_ autoscaling: JSON, spec: JSON, document: ConnectorDocument, name: String, namespace: String, kedaAvailable: Bool)
        -> Result<ScalerPlan, Problems>
    {
        var problems: [String] = []
        let choice = autoscaling["scaler"]?.string ?? "auto"
        let keda = choice == "keda" || (choice == "auto" && kedaAvailable)
        let scaleToZero = autoscaling["scaleToZero"]?.bool ?? false
        if scaleToZero && !keda {
            problems.append(
                "spec.autoscaling.scaleToZero: needs KEDA (keda.sh/v1alpha1), which this cluster does not serve; a HorizontalPodAutoscaler keeps at least one pod"
            )
        }
        let cooldown = document.spec.object("autoscaling")?.duration("cooldown") ?? .seconds(300)
        let cooldownSeconds = max(0, Int(cooldown.components.seconds) + (cooldown.components.attoseconds > 0 ? 1 : 0))
        var plan = ScalerPlan(
            type: keda ? .scaledObject : .horizontalPodAutoscaler, name: name,
            minReplicas: autoscaling["minReplicas"]?.int ?? 1, maxReplicas: autoscaling["maxReplicas"]?.int ?? 1,
            lagPerReplica: autoscaling["lagPerReplica"]?.int ?? 1, scaleToZero: scaleToZero, cooldownSeconds: cooldownSeconds, triggers: [])
        if keda {
            let sources = spec["sources"]?.array ?? []
            let env = spec[path: ["deployment", "env"]]?.array ?? []
            for (index, source) in document.sources.enumerated() {
                let raw = index < sources.count ? sources[index][source.kind] ?? .object([:]) : .object([:])
                if source.kind == "rabbitmq" {
                    switch RabbitMQAccess.make(raw, env: env, source: source.name, index: index) {
                    case .success(let access):
                        plan.triggers.append(plan.rabbitMQTrigger(source.name, access: access, authentication: "\(name)-\(index)"))
                        if let secret = access.secret {
                            plan.authentications.append(
                                (
                                    "\(name)-\(index)",
                                    ["secretTargetRef": [["parameter": "host", "name": .string(secret.name), "key": .string(secret.key)]]]
                                ))
                        }
                        continue
                    case .failure(let problem):
                        if scaleToZero {
                            problems.append(
                                "spec.autoscaling.scaleToZero: source '\(source.name)': \(problem.messages.joined(separator: "; ")), so KEDA cannot read the queue's depth while no pod runs"
                            )
                            continue
                        }
                    }
                }
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
                return .failure(
                    Problems(messages: [
                        "spec.autoscaling.scaleToZero: source '\(source.name)' has brokers or a group given by reference, or TLS or SASL settings, so KEDA cannot read its lag from the brokers while no pod runs"
                    ]))
            }
        }
        guard let server = autoscaling["prometheus"]?.string, !server.isEmpty else {
            return .failure(
                Problems(messages: [
                    "spec.autoscaling.prometheus: needed for source '\(source.name)' (\(source.kind)): KEDA reads its lag from the pods' metrics through Prometheus; set the server's address (http://host:port)"
                ]))
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

    /// KEDA's `rabbitmq` trigger: the queue's ready messages, read from the broker (so also
    /// with no pod running), `lagPerReplica` per pod.
    func rabbitMQTrigger(_ source: String, access: RabbitMQAccess, authentication: String) -> JSON {
        var metadata: [String: JSON] = [
            "protocol": "amqp", "queueName": .string(access.queue), "mode": "QueueLength", "value": .string(String(lagPerReplica)),
        ]
        var trigger: JSON = ["type": "rabbitmq", "name": .string(source)]
        if access.secret != nil {
            trigger["authenticationRef"] = ["name": .string(authentication)]
        } else {
            metadata["host"] = .string(access.url)
        }
        trigger["metadata"] = .object(metadata)
        return trigger
    }

    /// The TriggerAuthentication objects, with the operator's metadata for each name.
    func authenticationObjects(metadata: (String) -> JSON) -> [JSON] {
        authentications.map { entry in
            [
                "apiVersion": .string(ResourceType.triggerAuthentication.apiVersion), "kind": "TriggerAuthentication",
                "metadata": metadata(entry.name), "spec": entry.spec,
            ]
        }
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
            return [
                "apiVersion": .string(ResourceType.scaledObject.apiVersion), "kind": "ScaledObject", "metadata": metadata, "spec": spec,
            ]
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

/// How KEDA can reach a `rabbitmq` source's queue without a pod: the queue by name, and the
/// broker's URL either literal (no password in it) or from the Secret that the pods' own
/// environment variable takes it from (`url: ${env:NAME}` with `spec.deployment.env[NAME]`
/// from a `secretKeyRef`), which a TriggerAuthentication hands to KEDA. The operator never
/// reads the Secret.
struct RabbitMQAccess: Sendable {
    var queue: String
    /// The literal URL (when `secret` is nil).
    var url: String
    var secret: (name: String, key: String)?

    static func make(_ raw: JSON, env: [JSON], source: String, index: Int) -> Result<RabbitMQAccess, ScalerPlan.Problems> {
        let path = "spec.sources[\(index)].rabbitmq"
        func refuse(_ text: String) -> Result<RabbitMQAccess, ScalerPlan.Problems> { .failure(.init(messages: [text])) }
        guard let queue = raw["queue"]?.string, !queue.isEmpty, !queue.contains("${") else {
            return refuse("\(path).queue is given by reference")
        }
        if raw["tls"] != nil { return refuse("\(path).tls is set (KEDA's trigger would need the same certificates)") }
        let url = raw["url"]?.string ?? ""
        if !url.contains("${") {
            if Self.hasPassword(url) {
                return refuse(
                    "\(path).url holds a password, which the operator does not copy into a ScaledObject; take it from a Secret: url: ${env:NAME} with spec.deployment.env NAME from a secretKeyRef"
                )
            }
            return .success(RabbitMQAccess(queue: queue, url: url, secret: nil))
        }
        // Exactly one reference to an environment variable, nothing around it.
        guard url.hasPrefix("${env:"), url.hasSuffix("}"), url.firstIndex(of: "}") == url.index(before: url.endIndex) else {
            return refuse("\(path).url is neither literal nor exactly ${env:NAME}")
        }
        let name = String(url.dropFirst("${env:".count).dropLast())
        guard !name.contains(":-"), let entry = env.first(where: { $0["name"]?.string == name }) else {
            return refuse("\(path).url: ${env:\(name)} is not set by spec.deployment.env")
        }
        if let reference = entry[path: ["valueFrom", "secretKeyRef"]], let secret = reference["name"]?.string,
            let key = reference["key"]?.string
        {
            return .success(RabbitMQAccess(queue: queue, url: "", secret: (secret, key)))
        }
        if let value = entry["value"]?.string, !value.contains("$("), !Self.hasPassword(value) {
            return .success(RabbitMQAccess(queue: queue, url: value, secret: nil))
        }
        return refuse("\(path).url: spec.deployment.env \(name) is neither a secretKeyRef nor a literal URL without a password")
    }

    /// Whether an AMQP URL carries a password (user:password@).
    static func hasPassword(_ url: String) -> Bool {
        guard let scheme = url.range(of: "://") else { return false }
        let rest = url[scheme.upperBound...]
        let authority = rest.prefix { $0 != "/" }
        guard let at = authority.lastIndex(of: "@") else { return false }
        return authority[..<at].contains(":")
    }
}
