import SwitchyardCore

/// The schema of a Switchyard document. Connector kinds come from the registry; everything
/// else is declared here, once, for the validator, the JSON Schema and the docs.
public enum DocumentSchema {
    public static let apiVersion = "switchyard.dev/v1alpha1"
    public static let kind = "Connector"

    /// Bounds the validator enforces and the CRD states (`maxItems`, `maxLength`), so that the
    /// cost of the CRD's CEL rules, which Kubernetes estimates from them, stays within its budget.
    public enum Limits {
        /// Sources, targets and routes, each.
        public static let entries = 64
        /// Characters of a source, target or route name.
        public static let nameLength = 63
    }

    static let batchingFields: [OptionField] = [
        OptionField("maxMessages", .int(min: 1, max: 1_000_000), default: "500", doc: "write a batch when it holds this many messages"),
        OptionField("maxBytes", .size, default: "1MiB", doc: "write a batch when it holds this many bytes"),
        OptionField("maxDelay", .duration, default: "20ms", doc: "write a partial batch this long after its first message arrived"),
    ]

    /// `spec.batching` (with defaults).
    public static let batching = ObjectSchema(doc: "How targets batch writes; each target may override it.", batchingFields)

    /// A target's own `batching` (no defaults: unset fields fall back to `spec.batching`).
    static let targetBatching = ObjectSchema(
        doc: "Overrides spec.batching for this target.",
        batchingFields.map { field in
            var copy = field
            copy.defaultValue = nil
            return copy
        })

    /// Fields every source entry may hold besides `name` and its kind.
    public static let sourceCommon = ObjectSchema([
        OptionField(
            "cluster", .name,
            doc:
                "the cluster this source reads from; every message it submits gets this name in the origin header (when it has none yet) and its hop count raised by one (see spec.provenance); default spec.provenance.cluster"
        ),
        OptionField(
            "skipOrigins", .list(.name),
            doc:
                "messages whose origin header names one of these clusters are acknowledged without being routed (loop prevention for active-active bridges), counted in switchyard_source_skipped_messages_total"
        ),
    ])

    /// `spec.provenance`: the headers of bridged messages.
    public static let provenance = ObjectSchema(
        doc: "Provenance headers of bridged messages and the hop limit.",
        [
            OptionField("cluster", .name, doc: "default cluster name of every source that names none"),
            OptionField(
                "originHeader", .string, default: Provenance.defaultOriginHeader,
                doc: "header naming the cluster a message was first bridged from"),
            OptionField("hopsHeader", .string, default: Provenance.defaultHopsHeader, doc: "header counting the bridges a message crossed"),
            OptionField(
                "maxHops", .int(min: 1, max: 1000), default: String(Provenance.defaultMaxHops),
                doc: "a message that already crossed this many bridges is skipped (acknowledged, not routed) and counted"),
            OptionField(
                "positionHeaders", .bool, default: "true",
                doc:
                    "stamp messages with durable positions (Kafka) with their source position: switchyard-source-cluster, -topic, -partition, -offset (what offset translation reads)"
            ),
        ])

    /// Fields every target entry may hold besides `name` and its kind.
    public static let targetCommon = ObjectSchema([
        OptionField("batching", .object(targetBatching), doc: "overrides spec.batching for this target"),
        OptionField(
            "parallelism", .int(min: 1, max: 256), default: "1",
            doc: "parallel writers (lanes); messages keep their order per shard (or per key with ordering: key) within a lane"),
        OptionField(
            "queueCapacity", .int(min: 1), doc: "messages each lane queues before sources wait; default 4 x maxMessages, at least 1024"),
        OptionField(
            "inFlight", .int(min: 1, max: 64),
            doc:
                "batches each lane may have handed to the target and not yet confirmed; each is handed over in the lane's order, and a batch retried after a failure may land after those started behind it (1 keeps the order even then); default: the kind's (kafka, link and rabbitmq 4; other kinds 1, the only value they allow)"
        ),
    ])

    public static let route = ObjectSchema(
        doc: "Sends messages from sources to targets.",
        [
            OptionField("name", .name, doc: "a name for logs and metrics; default routes[N]"),
            OptionField("from", .list(.name), required: true, doc: "source names"),
            OptionField(
                "to", .list(.name), required: true, doc: "target names; a message is acknowledged only when every one of them confirmed it"),
            OptionField(
                "where",
                .object(
                    ObjectSchema(
                        doc: "All conditions must hold.",
                        [
                            OptionField(
                                "channel", .string, doc: "glob on the channel (topic, queue, routing key): * any run, ? one character"),
                            OptionField("headers", .map(.string), doc: "headers that must be present with exactly these values"),
                        ])), doc: "filter; messages that match no route are acknowledged without being written"),
            OptionField(
                "ordering", .choice(Ordering.allCases.map(\.rawValue)), default: "partition",
                doc: "partition: in order per source shard; key: in order per key, parallel across keys; none: no order"),
        ])

    public static let delivery = ObjectSchema(
        doc: "Delivery policy.",
        [
            OptionField(
                "deadLetter", .name,
                doc: "target that receives messages that cannot be written, with error headers; without one, such a message stops its route"
            ),
            OptionField(
                "retry",
                .object(
                    ObjectSchema([
                        OptionField("initialBackoff", .duration, default: "100ms", doc: "first retry waits up to this long (full jitter)"),
                        OptionField("maxBackoff", .duration, default: "30s", doc: "cap on the wait between retries"),
                        OptionField(
                            "maxAttempts", .int(min: 1),
                            doc: "attempts before a retriable message failure is dead-lettered; absent retries forever"),
                    ])), doc: "retry policy for retriable errors"),
            OptionField(
                "memoryLimit", .size,
                doc:
                    "byte budget for messages in flight, batches and client prefetch; default: half the container memory limit (cgroup), or 256MiB without one"
            ),
            OptionField(
                "drainTimeout", .duration, default: "20s",
                doc: "on shutdown, how long in-flight messages may take to be written before the process exits anyway"),
        ])

    public static let observability = ObjectSchema(
        doc: "Logs, metrics and health endpoints.",
        [
            OptionField(
                "listen", .string, default: "0.0.0.0:8080",
                doc: "HTTP address for /livez, /readyz and /metrics; empty to turn the endpoints off"),
            OptionField(
                "logLevel", .choice(["trace", "debug", "info", "notice", "warning", "error", "critical"]), default: "info",
                doc: "minimum log level"),
            OptionField(
                "logFormat", .choice(["auto", "json", "text"]), default: "auto",
                doc: "json: one object per line; text: human-readable; auto: text on a terminal, json otherwise"),
            OptionField(
                "tap", .object(tap), doc: "live message sampling by `switchyard tap` (off unless enabled: it shows message contents)"),
        ])

    public static let tap = ObjectSchema(
        doc: "Live message sampling through the observability port (docs/observability.md).",
        [
            OptionField(
                "enabled", .bool, default: "false", doc: "allow `switchyard tap` to sample messages at sources, routes and targets"),
            OptionField(
                "buffer", .int(min: 1, max: 100_000), default: "1000",
                doc: "samples held per tap for a slow reader; beyond it samples are dropped and counted"),
            OptionField(
                "maxValueBytes", .int(min: 0, max: 65536), default: "256", doc: "bytes of a key, value or header value kept per sample"),
            OptionField("redactHeaders", .list(.string), doc: "header names (case-insensitive) whose values a tap shows as [redacted]"),
            OptionField("maxTaps", .int(min: 1, max: 64), default: "4", doc: "taps attached at once"),
        ])

    public static let deployment = ObjectSchema(
        doc: "How the operator runs the connector (custom resource only).",
        [
            OptionField("replicas", .int(min: 0), default: "1", literal: true, doc: "pods"),
            OptionField("image", .string, doc: "container image"),
            OptionField("resources", .map(.any), doc: "the container's resource requests and limits (a Kubernetes ResourceRequirements)"),
            OptionField(
                "env", .list(.map(.any)),
                doc:
                    "environment variables of the container (Kubernetes EnvVar list; secrets by secretKeyRef), read by ${env:...} references"
            ),
            OptionField("envFrom", .list(.map(.any)), doc: "Kubernetes EnvFromSource list (configMapRef, secretRef)"),
            OptionField("serviceAccountName", .string, doc: "service account of the pods"),
            OptionField("nodeSelector", .map(.string), doc: "node labels the pods require"),
            OptionField("tolerations", .list(.map(.any)), doc: "Kubernetes Toleration list"),
            OptionField("affinity", .map(.any), doc: "Kubernetes Affinity (nodeAffinity, podAffinity, podAntiAffinity)"),
        ])

    public static let autoscaling = ObjectSchema(
        doc:
            "Lag-driven autoscaling (custom resource only): the operator renders a KEDA ScaledObject when the cluster serves keda.sh/v1alpha1, else an autoscaling/v2 HorizontalPodAutoscaler; either scales the Connector through its scale subresource.",
        [
            OptionField(
                "minReplicas", .int(min: 1, max: 1000), default: "1", doc: "pods while there is work (and always, without scaleToZero)"),
            OptionField(
                "maxReplicas", .int(min: 1, max: 1000), required: true,
                doc: "pods at most; a Kafka source never gets more busy pods than it has partitions"),
            OptionField(
                "lagPerReplica", .int(min: 1), required: true,
                doc: "messages of lag one pod is expected to work off: replicas = ceil(total lag / lagPerReplica)"),
            OptionField(
                "scaleToZero", .bool, default: "false",
                doc:
                    "no pods while the lag is 0 (KEDA only; Kafka sources with literal brokers and RabbitMQ sources whose URL is literal or from a Secret: KEDA reads their backlog from the broker)"
            ),
            OptionField("cooldown", .duration, default: "5m", doc: "how long the lag must stay low before pods are removed"),
            OptionField(
                "scaler", .choice(["auto", "keda", "hpa"]), default: "auto",
                doc: "auto: KEDA when the cluster serves it, else a HorizontalPodAutoscaler"),
            OptionField(
                "prometheus", .string,
                doc: "KEDA only: the Prometheus server address (http://host:port) for sources whose lag KEDA cannot read from the broker"),
        ])

    public static let cutover = ObjectSchema(
        doc:
            "A cutover carried out by the operator (custom resource only, docs/migration.md): the workload stops, a Job runs `switchyard cutover` (Kafka: copy to the source's end, move the groups' offsets, reconcile; RabbitMQ: drain the queue), the report goes to the ConfigMap <name>-cutover and the CutoverComplete or CutoverFailed condition; the Connector stays stopped while this is set.",
        [
            OptionField(
                "groups", .list(.string),
                doc:
                    "Kafka-to-Kafka bridges: the consumer groups that move to the target cluster (not the bridge's own); none for a RabbitMQ source"
            ),
            OptionField("headers", .list(.string), doc: "headers the reconciliation compares besides key and value"),
            OptionField(
                "stopAt", .choice(["end"]), default: "end",
                doc: "end: the source's end when the cutover starts (a Kafka source's high watermarks)"),
        ])

    public static let spec = ObjectSchema(
        doc: "A Switchyard connector: sources, targets, routes and delivery policy.",
        [
            OptionField("sources", .list(.connector(.source)), required: true, doc: "where messages come from"),
            OptionField("targets", .list(.connector(.target)), required: true, doc: "where messages go"),
            OptionField("routes", .list(.object(route)), required: true, doc: "which sources feed which targets"),
            OptionField("delivery", .object(delivery), doc: "delivery policy"),
            OptionField("batching", .object(batching), doc: "default batching of every target"),
            OptionField("observability", .object(observability), doc: "logs, metrics, health"),
            OptionField(
                "provenance", .object(provenance),
                doc: "provenance headers and the hop limit of sources that name their cluster (bridges, docs/bridges.md)"),
            OptionField(
                "state", .choice(["running", "paused", "stopped"]), default: "running", literal: true,
                doc: "custom resource only: running, paused (scaled to zero) or stopped (workload removed)"),
            OptionField("deployment", .object(deployment), doc: "custom resource only: how the pods run"),
            OptionField(
                "autoscaling", .object(autoscaling), literal: true,
                doc: "custom resource only: scale the pods on the sources' lag (docs/scaling.md)"),
            OptionField(
                "cutover", .object(cutover), literal: true,
                doc: "custom resource only: finish a Kafka-to-Kafka migration through the operator (docs/migration.md)"),
        ])

    public static let metadata = ObjectSchema([
        OptionField("name", .string, doc: "resource name"),
        OptionField("namespace", .string, doc: "namespace"),
        OptionField("labels", .map(.string), doc: "labels"),
        OptionField("annotations", .map(.string), doc: "annotations"),
        OptionField("uid", .string, doc: "set by Kubernetes"),
        OptionField("resourceVersion", .string, doc: "set by Kubernetes"),
        OptionField("generation", .int(), doc: "set by Kubernetes"),
        OptionField("creationTimestamp", .string, doc: "set by Kubernetes"),
        OptionField("managedFields", .any, doc: "set by Kubernetes"),
        OptionField("finalizers", .list(.string), doc: "finalizers"),
        OptionField("ownerReferences", .any, doc: "owners"),
    ])

    /// The whole custom resource.
    public static let resource = ObjectSchema(
        doc: "A Connector custom resource.",
        [
            OptionField("apiVersion", .choice([apiVersion]), required: true, doc: "switchyard.dev/v1alpha1"),
            OptionField("kind", .choice([kind]), required: true, doc: "Connector"),
            OptionField("metadata", .object(metadata), doc: "Kubernetes object metadata"),
            OptionField("spec", .object(spec), required: true, doc: "the connector"),
            OptionField("status", .any, doc: "set by the operator"),
        ])
}
