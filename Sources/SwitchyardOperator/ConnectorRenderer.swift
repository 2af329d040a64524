import SwitchyardConfig
import SwitchyardCore
import Yams

/// Labels and annotations the operator writes.
public enum OperatorLabels {
    public static let name = "app.kubernetes.io/name"
    public static let instance = "app.kubernetes.io/instance"
    public static let component = "app.kubernetes.io/component"
    public static let managedBy = "app.kubernetes.io/managed-by"
    public static let managedByValue = "switchyard-operator"
    /// On the pod template and the Deployment: the hash of the mounted document.
    public static let documentHash = "switchyard.dev/document-hash"
    /// On the ConfigMap and the Deployment: the Connector generation the document was written from.
    public static let documentGeneration = "switchyard.dev/document-generation"
    /// On every owned object: the hash of what the operator last wrote, so an unchanged object
    /// is not written again.
    public static let appliedHash = "switchyard.dev/applied-hash"
    /// The key of the document in the ConfigMap, and where the pods mount it.
    public static let documentKey = "connector.yaml"
    public static let mountDirectory = "/etc/switchyard"
}

/// What the operator makes of one Connector.
public struct RenderedConnector: Sendable {
    public var configMap: JSON
    public var deployment: JSON
    public var service: JSON
    public var podDisruptionBudget: JSON
    /// SHA-256 (hex) of the document in the ConfigMap, without its generation.
    public var documentHash: String
    /// `spec.state`.
    public var state: String
    /// The pods' label selector, as `status.selector` shows it.
    public var selector: String
    public var desiredReplicas: Int
    /// The scaler of `spec.autoscaling` (a KEDA ScaledObject or a HorizontalPodAutoscaler) while
    /// the Connector runs; nil without autoscaling, or when paused or stopped.
    public var scaler: JSON?
    public var scalerType: ResourceType?
    /// KEDA TriggerAuthentications the ScaledObject's triggers refer to.
    public var triggerAuthentications: [JSON] = []
    /// The Job of `spec.cutover`; nil without one.
    public var cutover: CutoverJob?
}

/// The Job that carries out a Connector's `spec.cutover`, and where its report goes.
public struct CutoverJob: Sendable {
    public var job: JSON
    public var jobName: String
    /// The ConfigMap the report is written to (`<name>-cutover`).
    public var reportName: String
    /// SHA-256 of the cutover's fields and the document: a changed cutover is a new one.
    public var hash: String
    public var groups: [String]
    /// On the Job and the report ConfigMap.
    public static let hashAnnotation = "switchyard.dev/cutover-hash"
    /// The report's key in the ConfigMap.
    public static let reportKey = "report.json"
}

/// Validates a Connector with the same loader as `switchyard validate` and renders the objects
/// that run it. Pure: no API calls.
public struct ConnectorRenderer: Sendable {
    public var registry: ConnectorRegistry
    /// The image when `spec.deployment.image` is not set.
    public var defaultImage: String
    /// Added to the drain timeout for `terminationGracePeriodSeconds`.
    public var gracePeriodMargin = 10

    public init(registry: ConnectorRegistry, defaultImage: String) {
        self.registry = registry
        self.defaultImage = defaultImage
    }

    public enum Outcome: Sendable {
        case valid(RenderedConnector)
        /// The validator's messages, each with its path (`spec.targets[1].kafka.topic`). Lines are
        /// left out: they would count lines of the operator's rendering, not of the user's file.
        case invalid([String])
    }

    /// The document the pods mount: the resource without `status`, `spec.state`,
    /// `spec.deployment` and `spec.autoscaling` (those are the operator's), with the generation it came from.
    /// `includingGeneration: false` gives the text its hash is taken of, so that a change of
    /// only the operator's fields (which bumps the generation too) leaves the hash alone.
    public static func document(of connector: JSON, includingGeneration: Bool = true) -> String {
        var spec = connector["spec"] ?? .object([:])
        spec["deployment"] = nil
        spec["autoscaling"] = nil
        spec["cutover"] = nil
        spec["state"] = nil
        var metadata: JSON = [:]
        metadata["name"] = connector[path: ["metadata", "name"]]
        metadata["namespace"] = connector[path: ["metadata", "namespace"]]
        if includingGeneration { metadata["generation"] = connector[path: ["metadata", "generation"]] }
        let resource: JSON = [
            "apiVersion": .string(DocumentSchema.apiVersion), "kind": .string(DocumentSchema.kind), "metadata": metadata, "spec": spec,
        ]
        return yaml(resource)
    }

    /// YAML with sorted keys (deterministic, so its hash changes only with its content).
    static func yaml(_ value: JSON) -> String {
        let header = "# Written by the Switchyard operator from the Connector resource; edit the resource, not this.\n"
        return header + ((try? Yams.dump(object: value.plain, width: -1, allowUnicode: true, sortKeys: true)) ?? value.text)
    }

    /// A name that can name a Service (RFC 1035 label), as every owned object shares it.
    static func isServiceName(_ name: String) -> Bool {
        guard let first = name.first, let last = name.last, name.count <= 63, first.isLetter, first.isASCII, last != "-" else {
            return false
        }
        return name.allSatisfy { ($0.isASCII && ($0.isLowercase || $0.isNumber)) || $0 == "-" }
    }

    /// `kedaAvailable`: whether the cluster serves keda.sh/v1alpha1 (the reconciler asks the API
    /// server's discovery).
    public func render(_ connector: JSON, kedaAvailable: Bool = false) -> Outcome {
        let name = connector[path: ["metadata", "name"]]?.string ?? ""
        let namespace = connector[path: ["metadata", "namespace"]]?.string ?? "default"
        let uid = connector[path: ["metadata", "uid"]]?.string ?? ""
        let spec = connector["spec"] ?? .object([:])
        let deploymentSpec = spec["deployment"] ?? .object([:])

        let documentText = Self.document(of: connector)
        let whole = Self.yaml(withoutStatus(connector))
        var messages: [String] = []
        var loaded: ConnectorDocument?
        switch validate(whole, spec: spec) {
        case .success(let document): loaded = document
        case .failure(let errors): messages = errors.issues.map { "\($0.path): \($0.message)" } + [errors.omittedLine].compactMap { $0 }
        }
        if !Self.isServiceName(name) {
            messages.append(
                "metadata.name: '\(name)' must be a DNS label (lower-case letters, digits and '-', starting with a letter, at most 63 characters): it names the Service"
            )
        }
        if spec["cutover"] != nil && name.count > 55 {
            messages.append(
                "metadata.name: '\(name)' is longer than 55 characters: the cutover Job is named \(name)-cutover, and a Job's name has at most 63"
            )
        }
        if let loaded, loaded.observability.listen.isEmpty {
            messages.append(
                "spec.observability.listen: the operator needs the health endpoints for the pods' probes; set HOST:PORT such as 0.0.0.0:8080"
            )
        }
        let autoscaling = spec["autoscaling"]
        var scalerPlan: ScalerPlan?
        if let autoscaling, let loaded {
            switch ScalerPlan.make(
                autoscaling, spec: spec, document: loaded, name: name, namespace: namespace, kedaAvailable: kedaAvailable)
            {
            case .success(let plan): scalerPlan = plan
            case .failure(let problems): messages += problems.messages
            }
        }
        guard let document = loaded, messages.isEmpty else { return .invalid(messages) }

        let port = ListenAddress(document.observability.listen)?.port ?? 8080
        let hash = DocumentHash.hex(Array(Self.document(of: connector, includingGeneration: false).utf8))
        let generation = connector[path: ["metadata", "generation"]]?.int ?? 0
        let state = spec["cutover"] != nil ? "cutover" : document.state
        var replicas = state == "running" ? (deploymentSpec["replicas"]?.int ?? 1) : 0
        if let scalerPlan, state == "running" {
            // The scaler writes spec.deployment.replicas through the scale subresource; until it
            // does, and whatever was written by hand, stay within its bounds.
            replicas = min(
                max(deploymentSpec["replicas"]?.int ?? scalerPlan.minReplicas, scalerPlan.lowestReplicas), scalerPlan.maxReplicas)
        }
        let selectorLabels: JSON = [
            OperatorLabels.name: "switchyard", OperatorLabels.instance: .string(name), OperatorLabels.component: "connector",
        ]
        var labels = selectorLabels
        labels[OperatorLabels.managedBy] = .string(OperatorLabels.managedByValue)
        let owner: JSON = [
            "apiVersion": .string(ResourceType.connector.apiVersion), "kind": "Connector", "name": .string(name), "uid": .string(uid),
            "controller": true, "blockOwnerDeletion": true,
        ]
        func metadata(_ annotations: [String: JSON] = [:]) -> JSON {
            var value: JSON = ["name": .string(name), "namespace": .string(namespace), "labels": labels, "ownerReferences": [owner]]
            if !annotations.isEmpty { value["annotations"] = .object(annotations) }
            return value
        }

        let configMap: JSON = [
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": metadata([
                OperatorLabels.documentHash: .string(hash), OperatorLabels.documentGeneration: .string(String(generation)),
            ]),
            "data": [OperatorLabels.documentKey: .string(documentText)],
        ]

        let drainSeconds = Int(
            (Double(document.delivery.drainTimeout.components.seconds) + Double(document.delivery.drainTimeout.components.attoseconds)
                / 1e18).rounded(.up))
        var container: JSON = [
            "name": "connector",
            "image": .string(deploymentSpec["image"]?.string ?? defaultImage),
            "imagePullPolicy": "IfNotPresent",
            "args": ["run", "-c", .string("\(OperatorLabels.mountDirectory)/\(OperatorLabels.documentKey)")],
            "ports": [["name": "http", "containerPort": .int(port), "protocol": "TCP"]],
            "livenessProbe": [
                "httpGet": ["path": "/livez", "port": "http"], "periodSeconds": 10, "failureThreshold": 3, "timeoutSeconds": 2,
            ],
            "readinessProbe": [
                "httpGet": ["path": "/readyz", "port": "http"], "periodSeconds": 5, "failureThreshold": 2, "timeoutSeconds": 2,
            ],
            "securityContext": [
                "runAsNonRoot": true, "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
                "capabilities": ["drop": ["ALL"]], "seccompProfile": ["type": "RuntimeDefault"],
            ],
            "volumeMounts": [
                ["name": "document", "mountPath": .string(OperatorLabels.mountDirectory), "readOnly": true],
                ["name": "tmp", "mountPath": "/tmp"],
            ],
        ]
        for key in ["env", "envFrom", "resources"] { container[key] = deploymentSpec[key] }
        var podSpec: JSON = [
            "terminationGracePeriodSeconds": .int(drainSeconds + gracePeriodMargin),
            "securityContext": [
                "runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532,
                "seccompProfile": ["type": "RuntimeDefault"],
            ],
            "containers": [container],
            "volumes": [
                ["name": "document", "configMap": ["name": .string(name)]],
                ["name": "tmp", "emptyDir": ["sizeLimit": "64Mi"]],
            ],
        ]
        for key in ["serviceAccountName", "nodeSelector", "tolerations", "affinity"] { podSpec[key] = deploymentSpec[key] }
        // The pods do not call the API; a chosen service account may need its token.
        if deploymentSpec["serviceAccountName"] == nil { podSpec["automountServiceAccountToken"] = false }

        let deployment: JSON = [
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": metadata([
                OperatorLabels.documentHash: .string(hash), OperatorLabels.documentGeneration: .string(String(generation)),
            ]),
            "spec": [
                "replicas": .int(replicas),
                "revisionHistoryLimit": 3,
                "selector": ["matchLabels": selectorLabels],
                "strategy": ["type": "RollingUpdate", "rollingUpdate": ["maxSurge": 1, "maxUnavailable": 0]],
                "template": [
                    "metadata": ["labels": labels, "annotations": [OperatorLabels.documentHash: .string(hash)]],
                    "spec": podSpec,
                ],
            ],
        ]
        let service: JSON = [
            "apiVersion": "v1", "kind": "Service", "metadata": metadata(),
            "spec": [
                "type": "ClusterIP", "selector": selectorLabels,
                "ports": [["name": "metrics", "port": .int(port), "targetPort": "http", "protocol": "TCP"]],
            ],
        ]
        let pdb: JSON = [
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": metadata(),
            "spec": ["selector": ["matchLabels": selectorLabels], "maxUnavailable": 1],
        ]
        let selector = selectorLabels.object!.keys.sorted().map { "\($0)=\(selectorLabels[$0]!.string!)" }.joined(separator: ",")
        var rendered = RenderedConnector(
            configMap: configMap, deployment: deployment, service: service, podDisruptionBudget: pdb, documentHash: hash, state: state,
            selector: selector, desiredReplicas: replicas)
        if let cutover = spec["cutover"] {
            rendered.cutover = cutoverJob(
                cutover, podSpec: podSpec, container: container, labels: labels, metadata: metadata(), documentHash: hash)
        }
        if let scalerPlan, state == "running" {
            rendered.scaler = scalerPlan.object(metadata: metadata())
            rendered.triggerAuthentications = scalerPlan.authenticationObjects { authentication in
                var value = metadata()
                value["name"] = .string(authentication)
                return value
            }
            rendered.scalerType = scalerPlan.type
        }
        return .valid(rendered)
    }

    /// The Job that runs `switchyard cutover` on the mounted document, in a pod like the
    /// connector's (image, environment, volumes, service account), without its probes and port.
    func cutoverJob(_ cutover: JSON, podSpec: JSON, container: JSON, labels: JSON, metadata: JSON, documentHash: String) -> CutoverJob {
        let name = metadata["name"]?.string ?? ""
        let groups = (cutover["groups"]?.array ?? []).compactMap(\.string)
        let headers = (cutover["headers"]?.array ?? []).compactMap(\.string)
        let hash = DocumentHash.hex(Array((cutover.text + "\n" + documentHash).utf8))
        var arguments: [JSON] = [
            "cutover", "-c", .string("\(OperatorLabels.mountDirectory)/\(OperatorLabels.documentKey)"), "--output", "json",
        ]
        for group in groups { arguments += ["--group", .string(group)] }
        for header in headers { arguments += ["--header", .string(header)] }
        var jobContainer = container
        jobContainer["name"] = "cutover"
        jobContainer["args"] = .array(arguments)
        for key in ["ports", "livenessProbe", "readinessProbe"] { jobContainer[key] = nil }
        var jobPod = podSpec
        jobPod["containers"] = [jobContainer]
        jobPod["restartPolicy"] = "Never"
        var jobLabels = labels
        jobLabels[OperatorLabels.component] = "cutover"
        var jobMetadata = metadata
        jobMetadata["name"] = .string("\(name)-cutover")
        jobMetadata["labels"] = jobLabels
        jobMetadata["annotations"] = [CutoverJob.hashAnnotation: .string(hash)]
        let job: JSON = [
            "apiVersion": "batch/v1", "kind": "Job", "metadata": jobMetadata,
            "spec": [
                // A failed cutover is looked at, not repeated blindly: once more for a lost pod.
                "backoffLimit": 1,
                "template": ["metadata": ["labels": jobLabels], "spec": jobPod],
            ],
        ]
        return CutoverJob(job: job, jobName: "\(name)-cutover", reportName: "\(name)-cutover", hash: hash, groups: groups)
    }

    /// What is validated: the resource without its status and without the metadata the API
    /// server adds (managedFields, generateName, deletion fields and the like).
    func withoutStatus(_ connector: JSON) -> JSON {
        var metadata: JSON = [:]
        for key in ["name", "namespace", "generation", "labels", "annotations"] {
            metadata[key] = connector[path: ["metadata", key]]
        }
        return [
            "apiVersion": connector["apiVersion"] ?? .string(DocumentSchema.apiVersion),
            "kind": connector["kind"] ?? .string(DocumentSchema.kind),
            "metadata": metadata, "spec": connector["spec"] ?? .object([:]),
        ]
    }

    /// Stands in for values the operator cannot see: variables the pods take from Secrets or
    /// ConfigMaps, and `${file:...}` contents. The pod's own start-up check sees the real ones.
    static let placeholder = "1"

    /// Other stand-ins for a variable the operator cannot see, tried in turn when a field that
    /// takes it refuses the one before: a Secret often holds a broker's or a database's URL.
    static let placeholders = [
        placeholder, "amqp://placeholder:5672/%2f", "postgres://placeholder:5432/placeholder", "redis://placeholder:6379/0",
        "http://placeholder:80", "placeholder:9092", "true", "1s",
    ]

    /// Loads the resource as the pods will, with stand-ins for what only they can see. Where a
    /// field refuses a stand-in (a URL check refuses "1"), the next one is tried for the
    /// variables that field takes, so a value from a Secret is never refused for its stand-in;
    /// a field with a literal value is checked as written.
    func validate(_ whole: String, spec: JSON) -> Result<ConnectorDocument, DocumentErrors> {
        var environment = validationEnvironment(spec: spec, text: whole)
        let unknown = Set(environment.filter { $0.value == Self.placeholder }.keys)
        var choice: [String: Int] = [:]
        while true {
            let loader = DocumentLoader(
                registry: registry, interpolator: Interpolator(environment: environment, readFile: { _ in Self.placeholder }))
            let result = loader.load(whole)
            guard case .failure(let errors) = result else { return result }
            var changed = false
            for issue in errors.issues {
                guard let text = Self.value(at: issue.path, in: spec)?.string else { continue }
                for name in Self.referencedVariables(text) where unknown.contains(name) {
                    let next = (choice[name] ?? 0) + 1
                    guard next < Self.placeholders.count else { continue }
                    choice[name] = next
                    environment[name] = Self.placeholders[next]
                    changed = true
                }
            }
            if !changed { return result }
        }
    }

    /// The value at an issue's path (`spec.sources[0].rabbitmq.url`) in the resource's spec.
    static func value(at path: String, in spec: JSON) -> JSON? {
        guard path.hasPrefix("spec.") else { return nil }
        var current: JSON? = spec
        for part in path.dropFirst("spec.".count).split(separator: ".") {
            var key = Substring(part)
            var indices: [Int] = []
            while key.hasSuffix("]"), let open = key.lastIndex(of: "["),
                let index = Int(key[key.index(after: open)..<key.index(before: key.endIndex)])
            {
                indices.insert(index, at: 0)
                key = key[..<open]
            }
            current = current?[String(key)]
            for index in indices {
                guard let array = current?.array, index < array.count else { return nil }
                current = array[index]
            }
        }
        return current
    }

    /// The environment the pods will have, as far as the operator can know it: literal
    /// `spec.deployment.env` values; a placeholder for variables set by `valueFrom`, and, when
    /// `envFrom` is set, for every other variable the document names.
    func validationEnvironment(spec: JSON, text: String) -> [String: String] {
        var environment: [String: String] = [:]
        let deployment = spec["deployment"]
        for entry in deployment?["env"]?.array ?? [] {
            guard let name = entry["name"]?.string else { continue }
            if let value = entry["value"]?.string {
                environment[name] = value
            } else if entry["valueFrom"] != nil {
                environment[name] = Self.placeholder
            }
        }
        if !(deployment?["envFrom"]?.array ?? []).isEmpty {
            for name in Self.referencedVariables(text) where environment[name] == nil {
                environment[name] = Self.placeholder
            }
        }
        return environment
    }

    /// Names in `${env:NAME}` references.
    static func referencedVariables(_ text: String) -> Set<String> {
        var names = Set<String>()
        var rest = Substring(text)
        while let start = rest.range(of: "${env:") {
            rest = rest[start.upperBound...]
            let name = rest.prefix { $0.isLetter || $0.isNumber || $0 == "_" }
            if !name.isEmpty { names.insert(String(name)) }
        }
        return names
    }
}
