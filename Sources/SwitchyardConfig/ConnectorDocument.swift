import SwitchyardCore

/// A validated Switchyard document: what the runtime assembles a pipeline from.
public struct ConnectorDocument: Sendable {
    public struct Delivery: Sendable, Equatable {
        public var deadLetter: String?
        public var retry: RetryPolicy
        /// `nil`: derive from the container's memory limit.
        public var memoryLimit: Int?
        public var drainTimeout: Duration
    }

    public struct Observability: Sendable, Equatable {
        public var listen: String
        public var logLevel: String
        public var logFormat: String
        public var tap = TapSettings()
    }

    /// `spec.provenance`, with defaults.
    public struct ProvenanceSettings: Sendable, Equatable {
        public var cluster: String?
        public var originHeader: String
        public var hopsHeader: String
        public var maxHops: Int
        /// Whether sources stamp the source position headers (``SourcePosition``).
        public var positionHeaders: Bool = true
    }

    /// `metadata.name` when the document is a whole custom resource.
    public var name: String?
    /// `metadata.generation` when the document is a custom resource that Kubernetes numbered.
    public var generation: Int?
    public var sources: [ConnectorEntry]
    public var targets: [ConnectorEntry]
    public var routes: [Route]
    public var delivery: Delivery
    public var batching: BatchingPolicy
    public var observability: Observability
    public var provenance: ProvenanceSettings
    public var state: String
    /// The validated `spec` object (for the operator).
    public var spec: OptionValues
    /// Whether the document was a whole custom resource (not just its spec).
    public var isResource: Bool
    /// The texts that `${env:...}` and `${file:...}` references inserted (secrets among them):
    /// what the runtime shows of itself (`/status`, the status page) is scrubbed of them.
    public var insertedTexts: [String] = []

    /// The provenance rules of `source`: nil when it names no cluster (its own or the
    /// document's) and skips no origin.
    public func provenance(for source: ConnectorEntry) -> Provenance? {
        let cluster = source.common.string("cluster") ?? provenance.cluster
        let skip = Set(source.common.strings("skipOrigins") ?? [])
        guard cluster != nil || !skip.isEmpty else { return nil }
        return Provenance(
            cluster: cluster, skipOrigins: skip, originHeader: provenance.originHeader,
            hopsHeader: provenance.hopsHeader, maxHops: provenance.maxHops, stampsPosition: provenance.positionHeaders)
    }

    /// The batching policy of `target`: its own fields over `spec.batching`.
    public func batching(for target: ConnectorEntry) -> BatchingPolicy {
        var policy = batching
        if let own = target.common.object("batching") {
            if let value = own.int("maxMessages") { policy.maxMessages = value }
            if let value = own.size("maxBytes") { policy.maxBytes = value }
            if let value = own.duration("maxDelay") { policy.maxDelay = value }
        }
        return policy
    }
}

/// Loads and validates documents: YAML, interpolation, the schema, then the checks that span
/// fields (route names, the dead-letter target). All problems are reported at once.
public struct DocumentLoader: Sendable {
    public var registry: ConnectorRegistry
    public var interpolator: Interpolator

    public init(registry: ConnectorRegistry, interpolator: Interpolator) {
        self.registry = registry
        self.interpolator = interpolator
    }

    /// Loads `text`; on failure returns every issue found, sorted by line.
    public func load(_ text: String) -> Result<ConnectorDocument, DocumentErrors> {
        var root: ConfigNode
        switch YAMLLoader.parseAll(text) {
        case .success(let node): root = node
        case .failure(let errors): return .failure(errors)
        }
        guard case .mapping(let entries) = root.content else {
            return .failure(
                DocumentErrors([
                    ConfigIssue(
                        path: "document", line: root.line,
                        message: "expected an object (a Connector resource or its spec), found a \(root.kindName)")
                ]))
        }
        let isResource = entries.contains { ["apiVersion", "kind", "spec", "metadata"].contains($0.key) }
        var issues: [ConfigIssue] = []
        interpolator.apply(&root, path: isResource ? "" : "spec", issues: &issues)
        var decoder = OptionDecoder(
            connectorKinds: registry.decoderKinds,
            commonFields: [.source: DocumentSchema.sourceCommon, .target: DocumentSchema.targetCommon])
        var name: String?
        var generation: Int?
        var spec: OptionValues?
        /// A valid spec inside a resource whose own fields (apiVersion, kind, metadata) are not.
        var specAlone: OptionValues?
        if isResource {
            if let resource = decoder.decodeObject(root, DocumentSchema.resource, path: "") {
                spec = resource.object("spec")
                name = resource.object("metadata")?.string("name")
                generation = resource.object("metadata")?.int("generation")
            } else if let specNode = root["spec"] {
                var specDecoder = OptionDecoder(connectorKinds: decoder.connectorKinds, commonFields: decoder.commonFields)
                if let values = specDecoder.decodeObject(specNode, DocumentSchema.spec, path: "spec"), specDecoder.issues.isEmpty {
                    specAlone = values
                }
            }
        } else {
            spec = decoder.decodeObject(root, DocumentSchema.spec, path: "spec")
        }
        issues += decoder.issues
        var document: ConnectorDocument?
        if let spec, issues.isEmpty {
            document = build(spec, name: name, isResource: isResource, issues: &issues)
            document?.generation = generation
        } else if let specAlone {
            // A missing apiVersion or kind hides none of the spec's own problems.
            _ = build(specAlone, name: nil, isResource: true, issues: &issues)
        } else if let specNode = isResource ? root["spec"] : root {
            // The schema found problems; still report dangling names, so that every problem
            // is reported at once.
            issues += Self.referenceIssues(specNode)
        }
        if var document, issues.isEmpty {
            document.insertedTexts = Self.insertedTexts(root)
            return .success(document)
        }
        if issues.isEmpty {
            issues.append(ConfigIssue(path: "spec", line: nil, message: "the document is not valid"))
        }
        return .failure(DocumentErrors(issues))
    }

    func build(_ spec: OptionValues, name: String?, isResource: Bool, issues: inout [ConfigIssue]) -> ConnectorDocument? {
        let sources = (spec.list("sources") ?? []).compactMap { value -> ConnectorEntry? in
            if case .connector(let entry) = value { return entry }
            return nil
        }
        let targets = (spec.list("targets") ?? []).compactMap { value -> ConnectorEntry? in
            if case .connector(let entry) = value { return entry }
            return nil
        }
        if sources.isEmpty { issues.append(spec.issue("sources", "needs at least one source")) }
        if targets.isEmpty { issues.append(spec.issue("targets", "needs at least one target")) }
        let limit = DocumentSchema.Limits.entries
        if sources.count > limit { issues.append(spec.issue("sources", "holds \(sources.count) sources; at most \(limit) are supported")) }
        if targets.count > limit { issues.append(spec.issue("targets", "holds \(targets.count) targets; at most \(limit) are supported")) }
        if let routes = spec.list("routes"), routes.count > limit {
            issues.append(spec.issue("routes", "holds \(routes.count) routes; at most \(limit) are supported"))
        }
        for entry in sources + targets where entry.name.count > DocumentSchema.Limits.nameLength {
            issues.append(
                ConfigIssue(
                    path: "\(entry.path).name", line: entry.line,
                    message: "name '\(entry.name)' is longer than \(DocumentSchema.Limits.nameLength) characters"))
        }
        checkUnique(sources, role: "source", issues: &issues)
        checkUnique(targets, role: "target", issues: &issues)
        let sourceNames = Set(sources.map(\.name))
        let targetNames = Set(targets.map(\.name))

        var routes: [Route] = []
        var usedSources = Set<String>()
        var usedTargets = Set<String>()
        for (index, value) in (spec.list("routes") ?? []).enumerated() {
            guard case .object(let route) = value else { continue }
            let from = route.strings("from") ?? []
            let to = route.strings("to") ?? []
            if from.isEmpty { issues.append(route.issue("from", "a route needs at least one source")) }
            if to.isEmpty { issues.append(route.issue("to", "a route needs at least one target")) }
            for (i, source) in from.enumerated() where !sourceNames.contains(source) {
                issues.append(
                    ConfigIssue(
                        path: "\(route.path(of: "from"))[\(i)]", line: route.line(of: "from"),
                        message: "no source is named '\(source)' (sources: \(sourceNames.sorted().joined(separator: ", ")))"))
            }
            for (i, target) in to.enumerated() where !targetNames.contains(target) {
                issues.append(
                    ConfigIssue(
                        path: "\(route.path(of: "to"))[\(i)]", line: route.line(of: "to"),
                        message: "no target is named '\(target)' (targets: \(targetNames.sorted().joined(separator: ", ")))"))
            }
            if Set(to).count != to.count { issues.append(route.issue("to", "names a target twice")) }
            if Set(from).count != from.count { issues.append(route.issue("from", "names a source twice")) }
            usedSources.formUnion(from)
            usedTargets.formUnion(to)
            var filter = RouteFilter()
            if let condition = route.object("where") {
                filter.channel = condition.string("channel").map(Glob.init)
                filter.headers = (condition.map("headers") ?? []).map { ($0.key, Array(($0.value.stringValue ?? "").utf8)) }
            }
            if let name = route.string("name"), name.count > DocumentSchema.Limits.nameLength {
                issues.append(route.issue("name", "name '\(name)' is longer than \(DocumentSchema.Limits.nameLength) characters"))
            }
            let ordering = Ordering(rawValue: route.string("ordering") ?? "partition") ?? .partition
            routes.append(Route(name: route.string("name") ?? "routes[\(index)]", from: from, to: to, filter: filter, ordering: ordering))
        }
        if (spec.list("routes") ?? []).isEmpty { issues.append(spec.issue("routes", "needs at least one route")) }
        issues += positionKeyIssues(routes: routes, sources: sources, targets: targets)
        issues += inFlightIssues(targets)

        let deliveryValues = spec.object("delivery")
        let deadLetter = deliveryValues?.string("deadLetter")
        if let deadLetter, let deliveryValues {
            if !targetNames.contains(deadLetter) {
                issues.append(
                    deliveryValues.issue(
                        "deadLetter", "no target is named '\(deadLetter)' (targets: \(targetNames.sorted().joined(separator: ", ")))"))
            }
            usedTargets.insert(deadLetter)
        }
        for source in sources where !usedSources.contains(source.name) {
            issues.append(ConfigIssue(path: "\(source.path).name", line: source.line, message: "source '\(source.name)' is in no route"))
        }
        for target in targets where !usedTargets.contains(target.name) {
            issues.append(
                ConfigIssue(
                    path: "\(target.path).name", line: target.line,
                    message: "target '\(target.name)' is in no route and is not the dead-letter target"))
        }
        for source in sourceNames {
            let fanout = Set(routes.filter { $0.from.contains(source) }.flatMap(\.to))
            if fanout.count > 64 {
                issues.append(spec.issue("routes", "source '\(source)' is routed to \(fanout.count) targets; at most 64 are supported"))
            }
        }

        let retryValues = deliveryValues?.object("retry")
        let retry = RetryPolicy(
            initialBackoff: retryValues?.duration("initialBackoff") ?? .milliseconds(100),
            maxBackoff: retryValues?.duration("maxBackoff") ?? .seconds(30),
            maxAttempts: retryValues?.int("maxAttempts"))
        if retry.initialBackoff > retry.maxBackoff, let retryValues {
            issues.append(retryValues.issue("initialBackoff", "must not exceed maxBackoff"))
        }
        let memoryLimit = deliveryValues?.size("memoryLimit")
        if let memoryLimit, memoryLimit < 1 << 20, let deliveryValues {
            issues.append(deliveryValues.issue("memoryLimit", "must be at least 1MiB"))
        }
        let batchingValues = spec.object("batching")
        let batching = BatchingPolicy(
            maxMessages: batchingValues?.int("maxMessages") ?? 500,
            maxBytes: batchingValues?.size("maxBytes") ?? 1 << 20,
            maxDelay: batchingValues?.duration("maxDelay") ?? .milliseconds(20))
        let observabilityValues = spec.object("observability")
        var observability = ConnectorDocument.Observability(
            listen: observabilityValues?.string("listen") ?? "0.0.0.0:8080",
            logLevel: observabilityValues?.string("logLevel") ?? "info",
            logFormat: observabilityValues?.string("logFormat") ?? "auto")
        if let tap = observabilityValues?.object("tap") {
            observability.tap = TapSettings(
                enabled: tap.bool("enabled") ?? false, buffer: tap.int("buffer") ?? 1000,
                maxValueBytes: tap.int("maxValueBytes") ?? 256, redactHeaders: tap.strings("redactHeaders") ?? [],
                maxTaps: tap.int("maxTaps") ?? 4)
        }
        if !observability.listen.isEmpty && ListenAddress(observability.listen) == nil, let observabilityValues {
            issues.append(observabilityValues.issue("listen", "expected HOST:PORT, such as 0.0.0.0:8080 or 127.0.0.1:9090"))
        }
        let provenanceValues = spec.object("provenance")
        let provenance = ConnectorDocument.ProvenanceSettings(
            cluster: provenanceValues?.string("cluster"),
            originHeader: provenanceValues?.string("originHeader") ?? Provenance.defaultOriginHeader,
            hopsHeader: provenanceValues?.string("hopsHeader") ?? Provenance.defaultHopsHeader,
            maxHops: provenanceValues?.int("maxHops") ?? Provenance.defaultMaxHops,
            positionHeaders: provenanceValues?.bool("positionHeaders") ?? true)
        if let provenanceValues {
            issues += Self.provenanceIssues(provenanceValues, provenance, sources: sources)
        }
        if let autoscaling = spec.object("autoscaling") {
            issues += autoscalingIssues(autoscaling, sources: sources)
        }
        if let cutover = spec.object("cutover") {
            issues += Self.cutoverIssues(cutover, routes: routes, sources: sources, targets: targets, provenance: provenance)
        }
        return ConnectorDocument(
            name: name, generation: nil, sources: sources, targets: targets, routes: routes,
            delivery: .init(
                deadLetter: deadLetter, retry: retry, memoryLimit: memoryLimit,
                drainTimeout: deliveryValues?.duration("drainTimeout") ?? .seconds(20)),
            batching: batching, observability: observability, provenance: provenance, state: spec.string("state") ?? "running",
            spec: spec, isResource: isResource)
    }

    /// Checks of `spec.provenance` against the sources.
    static func provenanceIssues(_ values: OptionValues, _ settings: ConnectorDocument.ProvenanceSettings, sources: [ConnectorEntry])
        -> [ConfigIssue]
    {
        var issues: [ConfigIssue] = []
        for field in ["originHeader", "hopsHeader"] where values.string(field)?.isEmpty == true {
            issues.append(values.issue(field, "must not be empty"))
        }
        if settings.originHeader == settings.hopsHeader && !settings.originHeader.isEmpty {
            issues.append(values.issue("hopsHeader", "must differ from originHeader ('\(settings.originHeader)')"))
        }
        let named = sources.contains { $0.common.string("cluster") != nil || !($0.common.strings("skipOrigins") ?? []).isEmpty }
        if settings.cluster == nil && !named {
            issues.append(
                ConfigIssue(
                    path: values.path, line: values.line,
                    message:
                        "no source names its cluster or skips an origin, so these settings apply to nothing: set cluster here or on a source (spec.sources[N].cluster)"
                ))
        }
        return issues
    }

    /// The texts interpolation inserted into `node`: each interpolated scalar's text, each value
    /// a reference inserted and, for a text of several lines, each line (of 4 characters or
    /// more: shorter ones would scrub ordinary words).
    static func insertedTexts(_ node: ConfigNode) -> [String] {
        var texts = Set<String>()
        func walk(_ node: ConfigNode) {
            switch node.content {
            case .null: return
            case .scalar(let scalar):
                guard scalar.interpolated else { return }
                func trimmed(_ text: Substring) -> String {
                    String(text.drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed())
                }
                for inserted in [scalar.text] + scalar.inserted {
                    let whole = trimmed(inserted[...])
                    if whole.count >= 4 { texts.insert(whole) }
                    for line in inserted.split(whereSeparator: \.isNewline) {
                        let text = trimmed(line)
                        if text.count >= 4 { texts.insert(text) }
                    }
                }
            case .sequence(let items): items.forEach(walk)
            case .mapping(let entries): entries.forEach { walk($0.value) }
            }
        }
        walk(node)
        // Longest first, so that a text containing another is scrubbed whole.
        return texts.sorted { $0.count != $1.count ? $0.count > $1.count : $0 < $1 }
    }

    /// Route and dead-letter names that name no entry, read from the raw document.
    static func referenceIssues(_ spec: ConfigNode) -> [ConfigIssue] {
        func names(_ key: String) -> Set<String>? {
            guard case .sequence(let items)? = spec[key]?.content else { return nil }
            var result = Set<String>()
            for item in items {
                guard case .scalar(let scalar)? = item["name"]?.content, !scalar.interpolated, !scalar.unresolved else { return nil }
                result.insert(scalar.text)
            }
            return result
        }
        guard let sources = names("sources"), let targets = names("targets") else { return [] }
        var issues: [ConfigIssue] = []
        func check(_ node: ConfigNode?, path: String, known: Set<String>, role: String) {
            guard case .sequence(let items)? = node?.content else { return }
            for (index, item) in items.enumerated() {
                guard case .scalar(let scalar) = item.content, !scalar.interpolated, !scalar.unresolved, !known.contains(scalar.text) else {
                    continue
                }
                issues.append(
                    ConfigIssue(
                        path: "\(path)[\(index)]", line: item.line,
                        message: "no \(role) is named '\(scalar.raw)' (\(role)s: \(known.sorted().joined(separator: ", ")))"))
            }
        }
        if case .sequence(let routes)? = spec["routes"]?.content {
            for (index, route) in routes.enumerated() {
                check(route["from"], path: "spec.routes[\(index)].from", known: sources, role: "source")
                check(route["to"], path: "spec.routes[\(index)].to", known: targets, role: "target")
            }
        }
        if let node = spec["delivery"]?["deadLetter"], case .scalar(let scalar) = node.content, !scalar.interpolated, !scalar.unresolved,
            !targets.contains(scalar.text)
        {
            issues.append(
                ConfigIssue(
                    path: "spec.delivery.deadLetter", line: node.line,
                    message: "no target is named '\(scalar.raw)' (targets: \(targets.sorted().joined(separator: ", ")))"))
        }
        return issues
    }

    /// `spec.cutover`: a Kafka source routed to a Kafka target, whose records carry their
    /// source positions, and groups other than the bridge's own.
    static func cutoverIssues(
        _ values: OptionValues, routes: [Route], sources: [ConnectorEntry], targets: [ConnectorEntry],
        provenance: ConnectorDocument.ProvenanceSettings
    ) -> [ConfigIssue] {
        var issues: [ConfigIssue] = []
        let kafkaTargets = Set(targets.filter { $0.kind == "kafka" }.map(\.name))
        let bridged = sources.filter { source in
            source.kind == "kafka" && routes.contains { $0.from.contains(source.name) && $0.to.contains { kafkaTargets.contains($0) } }
        }
        let groups = values.strings("groups") ?? []
        guard let source = bridged.first else {
            // A queue drained into the new system: no groups to move.
            let queues = sources.filter { source in source.kind == "rabbitmq" && routes.contains { $0.from.contains(source.name) } }
            if queues.count == 1 {
                if !groups.isEmpty {
                    issues.append(
                        values.issue(
                            "groups",
                            "source '\(queues[0].name)' is a RabbitMQ queue, which has no consumer groups to move; leave groups out"))
                }
            } else if queues.count > 1 {
                issues.append(
                    values.issue(
                        "groups",
                        "a cutover works on one queue: rabbitmq sources \(queues.map(\.name).joined(separator: ", ")) are each routed"))
            } else {
                issues.append(
                    values.issue(
                        "groups",
                        "a cutover needs a kafka source routed to a kafka target (a Kafka-to-Kafka bridge), or a rabbitmq source whose queue it drains"
                    ))
            }
            return issues
        }
        if bridged.count > 1 {
            issues.append(
                values.issue(
                    "groups",
                    "a cutover works on one bridge: kafka sources \(bridged.map(\.name).joined(separator: ", ")) are each routed to a kafka target"
                ))
        }
        if source.common.string("cluster") == nil && provenance.cluster == nil {
            issues.append(
                values.issue(
                    "groups",
                    "source '\(source.name)' names no cluster (set \(source.path).cluster or spec.provenance.cluster): the bridge stamps no source positions, so offsets cannot be translated"
                ))
        } else if !provenance.positionHeaders {
            issues.append(
                values.issue(
                    "groups",
                    "spec.provenance.positionHeaders is false: the bridge stamps no source positions, so offsets cannot be translated"))
        }
        if groups.isEmpty { issues.append(values.issue("groups", "name at least one consumer group to move")) }
        let own = source.options.string("group") ?? source.name
        if groups.contains(own) {
            issues.append(
                values.issue(
                    "groups",
                    "'\(own)' is the bridge's own group (\(source.path).kafka.group); list the groups of the applications that move"))
        }
        return issues
    }

    /// `spec.autoscaling` against itself and the sources.
    func autoscalingIssues(_ values: OptionValues, sources: [ConnectorEntry]) -> [ConfigIssue] {
        var issues: [ConfigIssue] = []
        let minimum = values.int("minReplicas") ?? 1
        if let maximum = values.int("maxReplicas"), minimum > maximum {
            issues.append(values.issue("minReplicas", "is \(minimum), above maxReplicas (\(maximum))"))
        }
        for source in sources where registry.source(source.kind)?.reportsLag != true {
            issues.append(
                values.issue(
                    "lagPerReplica",
                    "source '\(source.name)' (\(source.kind)) reports no lag to scale on; autoscaling needs sources that do (kafka, rabbitmq)"
                ))
        }
        if values.bool("scaleToZero") == true {
            if values.string("scaler") == "hpa" {
                issues.append(values.issue("scaleToZero", "needs KEDA: a HorizontalPodAutoscaler keeps at least one pod"))
            }
            for source in sources where source.kind != "kafka" && source.kind != "rabbitmq" {
                issues.append(
                    values.issue(
                        "scaleToZero",
                        "source '\(source.name)' (\(source.kind)): with no pod running nothing reports its lag, so nothing would scale it up again; only kafka and rabbitmq sources (whose backlog KEDA reads from the broker) can scale to zero"
                    ))
            }
        }
        return issues
    }

    /// A target whose identity (object key, row key) is made from offsets without the session,
    /// fed by a source whose positions restart (RabbitMQ, link): two replicas, or one before and
    /// after a restart, would write different messages under one identity and the later would
    /// replace the earlier. Refused, naming the field and the source.
    func positionKeyIssues(routes: [Route], sources: [ConnectorEntry], targets: [ConnectorEntry]) -> [ConfigIssue] {
        var issues: [ConfigIssue] = []
        for target in targets {
            guard let check = registry.target(target.kind)?.sessionlessPositionKeys else { continue }
            let feeding = Set(routes.filter { $0.to.contains(target.name) }.flatMap(\.from))
            guard let source = sources.first(where: { feeding.contains($0.name) && registry.source($0.kind)?.positions == .perSession })
            else { continue }
            for field in check(target.options) {
                let head = String(field.split(separator: ".").first ?? Substring(field))
                issues.append(
                    ConfigIssue(
                        path: "\(target.options.path).\(field)", line: target.options.line(of: head),
                        message:
                            "is made from offsets without {{ session }}, but source '\(source.name)' (\(source.kind)) numbers its positions anew with every connection or sender: two replicas, or one replica before and after a restart, would write different messages under the same key and the later would replace the earlier; add {{ session }} to it (docs/scaling.md)"
                    ))
            }
        }
        return issues
    }

    /// `inFlight` above 1 on a kind that confirms each batch before the next.
    func inFlightIssues(_ targets: [ConnectorEntry]) -> [ConfigIssue] {
        targets.compactMap { target in
            guard let inFlight = target.common.int("inFlight"), inFlight > 1,
                let kind = registry.target(target.kind), kind.batchesInFlight == nil
            else { return nil }
            return target.common.issue(
                "inFlight",
                "a \(target.kind) target confirms each batch before it starts the next; only 1 is allowed (use parallelism for more writers)"
            )
        }
    }

    func checkUnique(_ entries: [ConnectorEntry], role: String, issues: inout [ConfigIssue]) {
        var seen = Set<String>()
        for entry in entries where !seen.insert(entry.name).inserted {
            issues.append(
                ConfigIssue(path: "\(entry.path).name", line: entry.line, message: "another \(role) is already named '\(entry.name)'"))
        }
    }
}

/// The problems found in a document: the first ``limit`` by line, and how many more there are.
public struct DocumentErrors: Error, Sendable, CustomStringConvertible {
    /// Problems kept and shown; a document of a megabyte could hold a hundred thousand.
    public static let limit = 100

    public var issues: [ConfigIssue]
    /// Problems found beyond ``limit``, not kept.
    public var omitted: Int

    public init(_ issues: [ConfigIssue]) {
        let sorted = issues.sorted { ($0.line ?? 0, $0.path) < ($1.line ?? 0, $1.path) }
        self.issues = Array(sorted.prefix(Self.limit))
        self.omitted = sorted.count - self.issues.count
    }

    /// Problems found, shown or not.
    public var count: Int { issues.count + omitted }

    /// `and N more problems`, when some were not kept.
    public var omittedLine: String? {
        omitted > 0 ? "and \(omitted) more problem\(omitted == 1 ? "" : "s") (only the first \(Self.limit) are shown)" : nil
    }

    public var description: String { (issues.map(\.description) + [omittedLine].compactMap { $0 }).joined(separator: "\n") }
}

/// A `HOST:PORT` listen address.
public struct ListenAddress: Sendable, Equatable {
    public var host: String
    public var port: Int

    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":") else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port), !host.isEmpty else { return nil }
        self.host = host
        self.port = port
    }
}
