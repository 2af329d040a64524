import Foundation
import Synchronization
import Logging

/// An owned object's name is taken by an object this Connector does not control.
struct NotOwnedError: Error, CustomStringConvertible {
    var kind: String
    var name: String
    var description: String { "\(kind) \(name) exists and is not controlled by this Connector; rename or remove it" }
}

/// One reconcile of one Connector: read it, validate it, bring its ConfigMap, Deployment,
/// Service and PodDisruptionBudget to what it asks for, and write its status. Idempotent and
/// level-triggered: it looks only at the current objects, never at what changed.
///
/// Writes are create-or-update with optimistic concurrency: a PUT carries the resourceVersion
/// that was read, a 409 reads again and retries. An owned object carries the hash of what was
/// last written (`switchyard.dev/applied-hash`), so an unchanged object is not written again.
public final class ConnectorReconciler: Sendable {
    let client: KubeClient
    let renderer: ConnectorRenderer
    let logger: Logger
    let metrics = OperatorMetrics()
    static let conflictRetries = 5
    /// Whether the cluster serves KEDA's ScaledObject, asked of the API server's discovery at
    /// most once a minute.
    let kedaDiscovery = Mutex<(served: Bool, asked: ContinuousClock.Instant?)>((false, nil))

    let events: EventRecorder
    /// Reads the pods' `/status` to count idle members.
    let members: MemberProbe
    /// Connectors (namespace/name) that had more than one pod at their last reconcile: the
    /// controller reconciles them every `memberInterval` to keep `status.idleReplicas` current.
    let multiPod = Mutex<Set<String>>([])
    /// Connectors (namespace/name) whose cutover is under way: reconciled every
    /// `memberInterval` too, to see the pods go and the Job end.
    let waiting = Mutex<Set<String>>([])

    public init(
        client: KubeClient, renderer: ConnectorRenderer, logger: Logger, instance: String = ProcessInfo.processInfo.hostName,
        members: MemberProbe = MemberProbe()
    ) {
        self.client = client
        self.members = members
        self.renderer = renderer
        self.logger = logger
        self.events = EventRecorder(client: client, logger: logger, instance: instance)
    }

    public func reconcile(namespace: String, name: String) async throws {
        guard let connector = try await client.getIfExists(.connector, namespace: namespace, name: name) else {
            // Deleted: the garbage collector removes what it owned (owner references).
            return
        }
        if connector[path: ["metadata", "deletionTimestamp"]] != nil { return }
        let generation = connector[path: ["metadata", "generation"]]?.int ?? 0
        let uid = connector[path: ["metadata", "uid"]]?.string ?? ""
        let previous = connector["status"] ?? .object([:])
        var status: JSON

        let wantsKEDA =
            connector[path: ["spec", "autoscaling"]] != nil
            && connector[path: ["spec", "autoscaling", "scaler"]]?.string ?? "auto" == "auto"
        let kedaAvailable = wantsKEDA ? try await servesKEDA() : false
        switch renderer.render(connector, kedaAvailable: kedaAvailable) {
        case .invalid(let messages):
            metrics.invalidSpecs.increment()
            logger.warning(
                "Connector is not valid; its workload is left as it is",
                metadata: ["connector": "\(namespace)/\(name)", "problems": "\(messages.joined(separator: "; "))"])
            // Only read what runs: nothing is written but the status.
            let deployment = try await client.getIfExists(.deployment, namespace: namespace, name: name)
            let owned = deployment.map { Self.isControlled($0, by: uid) } == true ? deployment : nil
            let state = connector[path: ["spec", "state"]]?.string ?? "running"
            let desired = owned?[path: ["spec", "replicas"]]?.int ?? 0
            status = Self.status(
                previous: previous, generation: generation, valid: (false, "InvalidSpec", Self.truncated(messages.joined(separator: "\n"))),
                state: owned == nil && state != "stopped" ? "undeployed" : state, deployment: owned, desiredReplicas: desired,
                selector: previous["selector"]?.string)
        case .valid(let rendered):
            do {
                status = try await applyRendered(rendered, connector: connector, previous: previous, generation: generation, uid: uid)
            } catch let error as NotOwnedError {
                await events.conflict(error, about: connector)
                throw error
            }
            events.conflictResolved(about: connector)
        }
        for event in ConnectorEvent.transitions(previous: previous, current: status) {
            await events.record(event, about: connector)
        }
        try await writeStatus(namespace: namespace, name: name, previous: previous, status: status)
    }

    /// Writes the objects of a valid Connector; returns its status.
    func applyRendered(_ rendered: RenderedConnector, connector: JSON, previous: JSON, generation: Int, uid: String) async throws -> JSON {
        let namespace = connector[path: ["metadata", "namespace"]]?.string ?? "default"
        let name = connector[path: ["metadata", "name"]]?.string ?? ""
        let documentGeneration = try await applyConfigMap(rendered.configMap, hash: rendered.documentHash, uid: uid)
        _ = try await apply(.service, rendered.service, uid: uid)
        _ = try await apply(.podDisruptionBudget, rendered.podDisruptionBudget, uid: uid)
        var deployment: JSON?
        if rendered.state == "stopped" || rendered.state == "cutover" {
            try await deleteOwned(.deployment, namespace: namespace, name: name, uid: uid)
        } else {
            var desired = rendered.deployment
            desired[path: ["metadata", "annotations", OperatorLabels.documentGeneration]] = .string(documentGeneration)
            let (stored, before) = try await applyObject(.deployment, desired, uid: uid)
            deployment = stored
            if rendered.state == "running", let from = before?[path: ["spec", "replicas"]]?.int, from != rendered.desiredReplicas {
                await events.record(ConnectorEvent(.normal, "Scaled", "from \(from) to \(rendered.desiredReplicas) pods"), about: connector)
            }
        }
        try await applyScaler(rendered, namespace: namespace, name: name, uid: uid)
        let idle = await idleMembers(rendered, deployment: deployment, namespace: namespace, name: name)
        var cutoverState: CutoverState?
        if let cutover = rendered.cutover {
            cutoverState = try await applyCutover(cutover, rendered: rendered, namespace: namespace, name: name, uid: uid)
        }
        let key = "\(namespace)/\(name)"
        waiting.withLock { if cutoverState?.inProgress == true { $0.insert(key) } else { $0.remove(key) } }
        return Self.status(
            previous: previous, generation: generation, valid: (true, "Valid", "the document passed validation"),
            state: rendered.state, deployment: deployment, desiredReplicas: rendered.desiredReplicas, selector: rendered.selector,
            idle: idle, cutover: cutoverState)
    }

    /// The running pods that hold no share of the work, while the Connector runs more than one
    /// pod (one pod always holds every partition); nil otherwise.
    func idleMembers(_ rendered: RenderedConnector, deployment: JSON?, namespace: String, name: String) async -> MemberProbe.Count? {
        let pods = deployment?[path: ["status", "replicas"]]?.int ?? 0
        let several = rendered.state == "running" && max(pods, rendered.desiredReplicas) > 1
        multiPod.withLock { keys in
            if several { keys.insert("\(namespace)/\(name)") } else { keys.remove("\(namespace)/\(name)") }
        }
        guard several else { return nil }
        do {
            let list = try await client.list(.pod, namespace: namespace, labelSelector: rendered.selector)
            return await members.count(pods: list)
        } catch {
            // Counting idle pods is information, not reconciliation: without it (no right to
            // list pods, say) the rest of the status is still written.
            logger.warning(
                "cannot list the Connector's pods to count idle ones", metadata: ["connector": "\(namespace)/\(name)", "error": "\(error)"])
            return nil
        }
    }

    // MARK: Owned objects

    static func isControlled(_ object: JSON, by uid: String) -> Bool {
        (object[path: ["metadata", "ownerReferences"]]?.array ?? []).contains { $0["uid"]?.string == uid && $0["controller"]?.bool == true }
    }

    /// Writes the ConfigMap when the document changed; returns the generation it was written from.
    func applyConfigMap(_ desired: JSON, hash: String, uid: String) async throws -> String {
        let namespace = desired[path: ["metadata", "namespace"]]!.string!
        let name = desired[path: ["metadata", "name"]]!.string!
        if let existing = try await client.getIfExists(.configMap, namespace: namespace, name: name), Self.isControlled(existing, by: uid),
            existing[path: ["metadata", "annotations", OperatorLabels.documentHash]]?.string == hash,
            let generation = existing[path: ["metadata", "annotations", OperatorLabels.documentGeneration]]?.string
        {
            // The same document: keep the generation it was first written from, so that a change
            // of only replicas or state neither rewrites it nor restarts the pods.
            return generation
        }
        let stored = try await apply(.configMap, desired, uid: uid)
        return stored[path: ["metadata", "annotations", OperatorLabels.documentGeneration]]?.string ?? "0"
    }

    /// Create or update `desired`; returns the stored object.
    func apply(_ type: ResourceType, _ desired: JSON, uid: String) async throws -> JSON {
        try await applyObject(type, desired, uid: uid).stored
    }

    /// Create or update `desired`; returns the stored object and the one it replaced (nil when
    /// it was created).
    func applyObject(_ type: ResourceType, _ desired: JSON, uid: String) async throws -> (stored: JSON, previous: JSON?) {
        let namespace = desired[path: ["metadata", "namespace"]]!.string!
        let name = desired[path: ["metadata", "name"]]!.string!
        let hash = DocumentHash.hex(desired.encoded())
        var object = desired
        object[path: ["metadata", "annotations", OperatorLabels.appliedHash]] = .string(hash)
        for _ in 0..<Self.conflictRetries {
            guard let existing = try await client.getIfExists(type, namespace: namespace, name: name) else {
                do {
                    let created = try await client.create(type, namespace: namespace, object)
                    logger.info("created", metadata: ["kind": "\(type.kind)", "object": "\(namespace)/\(name)"])
                    return (created, nil)
                } catch let error as KubeError where error.isConflict {
                    continue  // created meanwhile: read it and update
                }
            }
            guard Self.isControlled(existing, by: uid) else { throw NotOwnedError(kind: type.kind, name: "\(namespace)/\(name)") }
            if existing[path: ["metadata", "annotations", OperatorLabels.appliedHash]]?.string == hash { return (existing, existing) }
            var update = object
            // Keep what others wrote into the metadata (labels and annotations of their own).
            for key in ["labels", "annotations"] {
                let theirs = existing[path: ["metadata", key]]?.object ?? [:]
                let ours = update[path: ["metadata", key]]?.object ?? [:]
                update[path: ["metadata", key]] = .object(theirs.merging(ours) { _, mine in mine })
            }
            update[path: ["metadata", "resourceVersion"]] = existing[path: ["metadata", "resourceVersion"]]
            if type == .service {
                // Allocated by the API server, immutable.
                for key in ["clusterIP", "clusterIPs"] { update[path: ["spec", key]] = existing[path: ["spec", key]] }
            }
            do {
                let stored = try await client.replace(type, namespace: namespace, name: name, update)
                logger.info("updated", metadata: ["kind": "\(type.kind)", "object": "\(namespace)/\(name)"])
                return (stored, existing)
            } catch let error as KubeError where error.isConflict {
                continue  // changed since it was read: read again
            }
        }
        throw KubeError(
            code: 409, reason: "Conflict",
            message: "\(type.kind) \(namespace)/\(name): still conflicting after \(Self.conflictRetries) attempts")
    }

    /// The scaler of `spec.autoscaling` while the Connector runs; the other kind, and both
    /// without autoscaling or while paused or stopped, removed (so nothing scales a paused
    /// Connector back up).
    func applyScaler(_ rendered: RenderedConnector, namespace: String, name: String, uid: String) async throws {
        if let scaler = rendered.scaler, let type = rendered.scalerType {
            _ = try await apply(type, scaler, uid: uid)
        }
        for type in [ResourceType.horizontalPodAutoscaler, .scaledObject] where type != rendered.scalerType {
            try await deleteOwned(type, namespace: namespace, name: name, uid: uid)
        }
        var wanted: Set<String> = []
        for authentication in rendered.triggerAuthentications {
            _ = try await apply(.triggerAuthentication, authentication, uid: uid)
            if let name = authentication[path: ["metadata", "name"]]?.string { wanted.insert(name) }
        }
        // The ones no trigger needs any more. Only where KEDA was seen (a ScaledObject now, or
        // discovery found KEDA before): otherwise there is nothing of KEDA's to remove, and
        // every reconcile would ask the API server for a resource it does not serve.
        guard rendered.scalerType == .scaledObject || kedaDiscovery.withLock({ $0.served }) else { return }
        let existing: JSON
        do {
            existing = try await client.list(.triggerAuthentication, namespace: namespace, labelSelector: rendered.selector)
        } catch let error as KubeError where error.isNotFound {
            return
        }
        for object in existing["items"]?.array ?? [] where Self.isControlled(object, by: uid) {
            if let stale = object[path: ["metadata", "name"]]?.string, !wanted.contains(stale) {
                try await deleteOwned(.triggerAuthentication, namespace: namespace, name: stale, uid: uid)
            }
        }
    }

    /// Whether the API server serves keda.sh/v1alpha1 ScaledObjects (cached for a minute).
    func servesKEDA() async throws -> Bool {
        let now = ContinuousClock.now
        if let cached = kedaDiscovery.withLock({ state -> Bool? in
            guard let asked = state.asked, now - asked < .seconds(60) else { return nil }
            return state.served
        }) {
            return cached
        }
        var served = false
        do {
            let list = try await client.request(.GET, "/apis/\(ResourceType.scaledObject.apiVersion)")
            served = (list["resources"]?.array ?? []).contains { $0["name"]?.string == ResourceType.scaledObject.plural }
        } catch let error as KubeError where error.isNotFound {
            served = false
        }
        kedaDiscovery.withLock { $0 = (served, now) }
        return served
    }

    func deleteOwned(_ type: ResourceType, namespace: String, name: String, uid: String) async throws {
        guard let existing = try await client.getIfExists(type, namespace: namespace, name: name), Self.isControlled(existing, by: uid)
        else { return }
        do {
            try await client.delete(type, namespace: namespace, name: name)
            logger.info("deleted", metadata: ["kind": "\(type.kind)", "object": "\(namespace)/\(name)"])
        } catch let error as KubeError where error.isNotFound {
            return
        }
    }

    // MARK: Status

    /// A merge patch on the status subresource, only when something changed. Members that are
    /// gone are removed with explicit nulls.
    func writeStatus(namespace: String, name: String, previous: JSON, status: JSON) async throws {
        guard status != previous else { return }
        var patch = status
        for key in (previous.object ?? [:]).keys where status[key] == nil { patch[key] = .null }
        do {
            _ = try await client.mergePatch(.connector, namespace: namespace, name: name, ["status": patch], subresource: "status")
        } catch let error as KubeError where error.isNotFound {
            return  // deleted meanwhile
        }
    }

    static func truncated(_ text: String) -> String {
        text.count <= 8192 ? text : String(text.prefix(8192)) + "\n(more problems not shown; run switchyard validate on the resource)"
    }

    /// The status the Connector should show now.
    static func status(
        previous: JSON, generation: Int, valid: (Bool, String, String), state: String, deployment: JSON?, desiredReplicas: Int,
        selector: String?,
        idle: MemberProbe.Count? = nil, cutover: CutoverState? = nil
    ) -> JSON {
        let replicas = deployment?[path: ["status", "replicas"]]?.int ?? 0
        let ready = deployment?[path: ["status", "readyReplicas"]]?.int ?? 0
        let updated = deployment?[path: ["status", "updatedReplicas"]]?.int ?? 0
        let observed = deployment?[path: ["status", "observedGeneration"]]?.int ?? 0
        let deploymentGeneration = deployment?[path: ["metadata", "generation"]]?.int ?? 1
        let rolledOut = deployment != nil && observed >= deploymentGeneration && updated == desiredReplicas && replicas == desiredReplicas

        let readyCondition: (Bool, String, String)
        let progressing: (Bool, String, String)
        switch state {
        case "stopped":
            readyCondition = (false, "Stopped", "spec.state is stopped: the workload is removed")
            progressing = (false, "Stopped", "nothing runs")
        case "cutover":
            readyCondition = (false, "Cutover", "spec.cutover is set: the workload is removed and the cutover Job carries it out")
            progressing =
                cutover?.inProgress == true ? (true, "CutoverRunning", cutover?.complete.2 ?? "") : (false, "CutoverEnded", "nothing runs")
        case "undeployed":
            readyCondition = (false, "NotDeployed", "no valid document has been deployed yet")
            progressing = (false, "NotDeployed", "nothing runs")
        case "paused":
            readyCondition = (false, "Paused", "spec.state is paused: scaled to zero")
            progressing = replicas == 0 ? (false, "Paused", "scaled to zero") : (true, "ScalingDown", "\(replicas) pods still running")
        default:
            if desiredReplicas == 0 {
                readyCondition = (false, "ScaledToZero", "spec.deployment.replicas is 0")
            } else if ready >= desiredReplicas {
                readyCondition = (true, "PodsReady", "\(ready) of \(desiredReplicas) pods ready\(Self.idleText(idle))")
            } else {
                readyCondition = (false, "PodsNotReady", "\(ready) of \(desiredReplicas) pods ready")
            }
            progressing =
                rolledOut
                ? (false, "RolledOut", "every pod runs the current document")
                : (true, "RollingOut", "\(updated) of \(desiredReplicas) pods updated")
        }
        let oldConditions = previous["conditions"]?.array ?? []
        func condition(_ type: String, _ value: (Bool, String, String)) -> JSON {
            let statusText = value.0 ? "True" : "False"
            let old = oldConditions.first { $0["type"]?.string == type }
            let since = old?["status"]?.string == statusText ? old?["lastTransitionTime"] : nil
            return [
                "type": .string(type), "status": .string(statusText), "reason": .string(value.1), "message": .string(value.2),
                "observedGeneration": .int(generation),
                "lastTransitionTime": since ?? .string(Self.rfc3339(Date())),
            ]
        }
        var status: JSON = [
            "observedGeneration": .int(generation),
            "replicas": .int(replicas),
            "readyReplicas": .int(ready),
            "conditions": [condition("Valid", valid), condition("Ready", readyCondition), condition("Progressing", progressing)],
        ]
        if let cutover {
            status["conditions"] = .array(
                (status["conditions"]?.array ?? []) + [
                    condition("CutoverComplete", cutover.complete), condition("CutoverFailed", cutover.failed),
                ])
            status["cutover"] = cutover.summary
        }
        if let selector { status["selector"] = .string(selector) }
        if let idle { status["idleReplicas"] = .int(idle.idle) }
        if rolledOut,
            let running = deployment?[path: ["metadata", "annotations", OperatorLabels.documentGeneration]]?.string.flatMap({ Int($0) })
        {
            status["runningGeneration"] = .int(running)
        } else if let running = previous["runningGeneration"] {
            status["runningGeneration"] = running
        }
        return status
    }

    /// "; 1 idle: ..." for the Ready condition's message, when pods are idle or did not answer.
    static func idleText(_ idle: MemberProbe.Count?) -> String {
        guard let idle else { return "" }
        var text = ""
        if idle.idle > 0 {
            text +=
                "; \(idle.idle) idle: \(idle.idle == 1 ? "it holds" : "they hold") no partition (more pods than the source topics have partitions)"
        }
        if idle.answered < idle.running {
            text += "; \(idle.running - idle.answered) of \(idle.running) running pods did not answer /status"
        }
        return text
    }

    static func rfc3339(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }
}
