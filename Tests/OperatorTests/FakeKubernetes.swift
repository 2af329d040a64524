import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization
import SwitchyardOperator

/// An in-process Kubernetes API server on loopback that speaks the REST and watch wire format:
/// JSON objects and `Status` errors, lists with a resourceVersion, and watches streamed as one
/// JSON event per line over chunked HTTP. What it honours, as a real API server does:
/// - every write gets a new resourceVersion from one counter; a PUT (or a patch naming a
///   resourceVersion) with a stale one is refused with 409 Conflict; a create of an existing
///   name with 409 AlreadyExists;
/// - `metadata.generation` starts at 1 and is bumped only when something outside `metadata` and
///   `status` changes, for the kinds that have it;
/// - the status subresource is kept apart: writes to the object keep its status, writes to
///   `/status` change nothing else;
/// - PATCH with `application/merge-patch+json` (RFC 7386); other patch types are refused (415),
///   as the operator does not use server-side apply;
/// - watch events ADDED, MODIFIED, DELETED, BOOKMARK (when asked with allowWatchBookmarks) and
///   ERROR; an expired resourceVersion gives 410 Gone, either as the HTTP status or as an
///   in-stream ERROR event (`goneInStream`);
/// - deleting an owner deletes its dependents (owner references), as the garbage collector does.
/// Tests force expiry with `compact()` and end watches with `closeWatches(...)`.
final class FakeKubernetes: Sendable {
    struct Kind: Sendable {
        var apiVersion: String
        var kind: String
        var hasStatus: Bool
        var hasGeneration: Bool
    }

    /// Resources by "group/plural".
    static let kinds: [String: Kind] = [
        "switchyard.dev/connectors": Kind(apiVersion: "switchyard.dev/v1alpha1", kind: "Connector", hasStatus: true, hasGeneration: true),
        "apps/deployments": Kind(apiVersion: "apps/v1", kind: "Deployment", hasStatus: true, hasGeneration: true),
        "policy/poddisruptionbudgets": Kind(apiVersion: "policy/v1", kind: "PodDisruptionBudget", hasStatus: true, hasGeneration: true),
        "/configmaps": Kind(apiVersion: "v1", kind: "ConfigMap", hasStatus: false, hasGeneration: false),
        "/services": Kind(apiVersion: "v1", kind: "Service", hasStatus: true, hasGeneration: false),
        "/events": Kind(apiVersion: "v1", kind: "Event", hasStatus: false, hasGeneration: false),
        "/pods": Kind(apiVersion: "v1", kind: "Pod", hasStatus: true, hasGeneration: false),
        "coordination.k8s.io/leases": Kind(apiVersion: "coordination.k8s.io/v1", kind: "Lease", hasStatus: false, hasGeneration: false),
        "autoscaling/horizontalpodautoscalers": Kind(
            apiVersion: "autoscaling/v2", kind: "HorizontalPodAutoscaler", hasStatus: true, hasGeneration: true),
        "keda.sh/scaledobjects": Kind(apiVersion: "keda.sh/v1alpha1", kind: "ScaledObject", hasStatus: true, hasGeneration: true),
        "keda.sh/triggerauthentications": Kind(
            apiVersion: "keda.sh/v1alpha1", kind: "TriggerAuthentication", hasStatus: false, hasGeneration: true),
        "batch/jobs": Kind(apiVersion: "batch/v1", kind: "Job", hasStatus: true, hasGeneration: true),
    ]

    struct Key: Hashable, Sendable {
        var resource: String
        var namespace: String
        var name: String
    }

    struct Event: Sendable {
        var revision: Int
        var resource: String
        var namespace: String
        var type: String
        var object: JSON
    }

    struct Watcher: Sendable {
        var resource: String
        var namespace: String?
        var selector: [(String, String)]
        var bookmarks: Bool
        var channel: any Channel
    }

    struct Request: Sendable {
        var method: String
        var path: String
        var query: String
        /// The bearer token it carried.
        var token: String?
    }

    struct State: Sendable {
        var revision = 100
        var objects: [Key: JSON] = [:]
        var history: [Event] = []
        var compactedBelow = 0
        var watchers: [ObjectIdentifier: Watcher] = [:]
        var requests: [Request] = []
        var goneInStream = true
        var gone = 0
        /// Whether KEDA's CRDs are installed: keda.sh/v1alpha1 is discoverable and served.
        var servesKEDA = false
        /// Pod logs (namespace/name to text), as the kubelet would serve them.
        var podLogs: [String: String] = [:]
    }

    let state = Mutex(State())
    /// When set, only these bearer tokens are accepted (401 otherwise).
    let tokens: Set<String>?
    let channel = Mutex<(any Channel)?>(nil)

    init(tokens: Set<String>? = nil) {
        self.tokens = tokens
    }

    /// Starts listening on 127.0.0.1 (over TLS with `tls`); returns the base URL.
    func start(tls: NIOSSLContext? = nil) async throws -> String {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                }.flatMap {
                    channel.pipeline.configureHTTPServerPipeline()
                }.flatMap {
                    channel.pipeline.addHandler(FakeKubernetesHandler(server: self))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        channel.withLock { $0 = server }
        return "\(tls == nil ? "http" : "https")://127.0.0.1:\(server.localAddress!.port!)"
    }

    func stop() async {
        closeWatches(inStreamGone: false)
        let server = channel.withLock { $0 }
        try? await server?.close()
    }

    // MARK: Test controls

    var goneInStream: Bool {
        get { state.withLock { $0.goneInStream } }
        set { state.withLock { $0.goneInStream = newValue } }
    }

    /// Forgets the history: a watch from any resourceVersion older than `revision` (default: the
    /// current one) is 410 Gone.
    func compact(below revision: Int? = nil) {
        state.withLock { $0.compactedBelow = revision ?? $0.revision }
    }

    /// Ends every open watch, optionally with an in-stream ERROR 410 event first.
    func closeWatches(inStreamGone: Bool) {
        state.withLock { state in
            for watcher in state.watchers.values {
                if inStreamGone {
                    write(watcher.channel, event: "ERROR", object: Self.status(410, "Expired", "too old resource version"))
                    state.gone += 1
                }
                end(watcher.channel)
            }
            state.watchers.removeAll()
        }
    }

    /// Sends a BOOKMARK with the current resourceVersion to every watch that asked for them;
    /// returns that resourceVersion.
    @discardableResult
    func sendBookmarks() -> Int {
        state.withLock { state in
            for watcher in state.watchers.values where watcher.bookmarks {
                let kind = Self.kinds[watcher.resource]!
                write(
                    watcher.channel, event: "BOOKMARK",
                    object: [
                        "apiVersion": .string(kind.apiVersion), "kind": .string(kind.kind),
                        "metadata": ["resourceVersion": .string(String(state.revision))],
                    ])
            }
            return state.revision
        }
    }

    var openWatches: Int { state.withLock { $0.watchers.count } }
    var requests: [Request] { state.withLock { $0.requests } }
    /// 410 answers given (as a status or in a stream).
    var goneCount: Int { state.withLock { $0.gone } }

    func listCount(_ type: ResourceType) -> Int {
        let path = type.path(namespace: nil)
        return requests.filter {
            $0.method == "GET"
                && ($0.path == path
                    || ($0.path.hasSuffix("/\(type.plural)")
                        && $0.path.hasPrefix(path.replacingOccurrences(of: "/\(type.plural)", with: "/namespaces/"))))
                && !$0.query.contains("watch=true")
        }.count
    }

    /// Writes (POST, PUT, PATCH, DELETE) to one object, or to its collection.
    func writes(_ type: ResourceType, namespace: String, name: String) -> [Request] {
        let path = type.path(namespace: namespace, name: name)
        return requests.filter { $0.method != "GET" && ($0.path == path || $0.path.hasPrefix(path + "/")) }
    }

    func object(_ type: ResourceType, _ namespace: String, _ name: String) -> JSON? {
        state.withLock { $0.objects[Key(resource: Self.resource(type), namespace: namespace, name: name)] }
    }

    func objects(_ type: ResourceType) -> [JSON] {
        state.withLock { state in state.objects.filter { $0.key.resource == Self.resource(type) }.map(\.value) }
    }

    static func resource(_ type: ResourceType) -> String { "\(type.group)/\(type.plural)" }

    /// Creates an object as a client would (POST).
    @discardableResult
    func create(_ type: ResourceType, _ namespace: String, _ object: JSON) -> JSON {
        state.withLock { state in
            let (code, body) = create(&state, resource: Self.resource(type), namespace: namespace, object: object)
            precondition(code == 201, "create failed: \(body)")
            return body
        }
    }

    /// Changes an object through the main endpoint (PUT semantics).
    @discardableResult
    func update(_ type: ResourceType, _ namespace: String, _ name: String, _ change: (inout JSON) -> Void) -> JSON {
        state.withLock { state in
            let key = Key(resource: Self.resource(type), namespace: namespace, name: name)
            var object = state.objects[key]!
            change(&object)
            let (code, body) = replace(&state, key: key, body: object, status: false)
            precondition(code == 200, "update failed: \(body)")
            return body
        }
    }

    func delete(_ type: ResourceType, _ namespace: String, _ name: String) {
        state.withLock { state in
            _ = delete(&state, key: Key(resource: Self.resource(type), namespace: namespace, name: name))
        }
    }

    /// What the Deployment controller and the kubelet would do: every Deployment is observed,
    /// its pods updated and ready (or only `ready` of them).
    /// Writes an object's status as its controller would (the status subresource).
    func setStatus(_ type: ResourceType, _ namespace: String, _ name: String, _ status: JSON) {
        state.withLock { state in
            let key = Key(resource: Self.resource(type), namespace: namespace, name: name)
            guard var object = state.objects[key] else { return }
            object["status"] = status
            _ = replace(&state, key: key, body: object, status: true)
        }
    }

    func rollOutDeployments(ready: Int? = nil) {
        state.withLock { state in
            for (key, object) in state.objects where key.resource == "apps/deployments" {
                let replicas = object[path: ["spec", "replicas"]]?.int ?? 1
                var status = object["status"] ?? [:]
                status["observedGeneration"] = object[path: ["metadata", "generation"]]
                status["replicas"] = .int(replicas)
                status["updatedReplicas"] = .int(replicas)
                status["readyReplicas"] = .int(min(replicas, ready ?? replicas))
                status["availableReplicas"] = .int(min(replicas, ready ?? replicas))
                var updated = object
                updated["status"] = status
                _ = replace(&state, key: key, body: updated, status: true)
            }
        }
    }

    // MARK: Storage

    static func status(_ code: Int, _ reason: String, _ message: String) -> JSON {
        [
            "kind": "Status", "apiVersion": "v1", "metadata": [:], "status": "Failure", "message": .string(message),
            "reason": .string(reason), "code": .int(code),
        ]
    }

    func nextRevision(_ state: inout State) -> String {
        state.revision += 1
        return String(state.revision)
    }

    func create(_ state: inout State, resource: String, namespace: String, object: JSON) -> (Int, JSON) {
        guard let kind = Self.kinds[resource] else {
            return (404, Self.status(404, "NotFound", "the server could not find the requested resource"))
        }
        guard let name = object[path: ["metadata", "name"]]?.string, !name.isEmpty else {
            return (422, Self.status(422, "Invalid", "metadata.name: Required value"))
        }
        if let given = object[path: ["metadata", "namespace"]]?.string, given != namespace {
            return (
                400, Self.status(400, "BadRequest", "the namespace of the provided object does not match the namespace sent on the request")
            )
        }
        let key = Key(resource: resource, namespace: namespace, name: name)
        if state.objects[key] != nil {
            return (409, Self.status(409, "AlreadyExists", "\(resource) \"\(name)\" already exists"))
        }
        var stored = object
        stored["apiVersion"] = .string(kind.apiVersion)
        stored["kind"] = .string(kind.kind)
        stored[path: ["metadata", "namespace"]] = .string(namespace)
        stored[path: ["metadata", "uid"]] = .string(UUID().uuidString.lowercased())
        stored[path: ["metadata", "creationTimestamp"]] = .string(Self.now())
        stored[path: ["metadata", "resourceVersion"]] = .string(nextRevision(&state))
        stored[path: ["metadata", "generation"]] = kind.hasGeneration ? 1 : nil
        if kind.hasStatus { stored["status"] = nil }
        state.objects[key] = stored
        emit(&state, resource: resource, namespace: namespace, type: "ADDED", object: stored)
        return (201, stored)
    }

    /// PUT on the object (`status: false`) or on its status subresource.
    func replace(_ state: inout State, key: Key, body: JSON, status: Bool) -> (Int, JSON) {
        guard let kind = Self.kinds[key.resource] else { return (404, Self.status(404, "NotFound", "no such resource")) }
        guard var stored = state.objects[key] else {
            return (404, Self.status(404, "NotFound", "\(key.resource) \"\(key.name)\" not found"))
        }
        if status && !kind.hasStatus { return (404, Self.status(404, "NotFound", "no status subresource")) }
        if body[path: ["metadata", "name"]]?.string != key.name {
            return (400, Self.status(400, "BadRequest", "the name of the object does not match the name on the URL"))
        }
        if let version = body[path: ["metadata", "resourceVersion"]]?.string,
            version != stored[path: ["metadata", "resourceVersion"]]?.string
        {
            return (
                409,
                Self.status(
                    409, "Conflict",
                    "Operation cannot be fulfilled on \(key.resource) \"\(key.name)\": the object has been modified; please apply your changes to the latest version and try again"
                )
            )
        }
        let before = stored
        if status {
            stored["status"] = body["status"]
        } else {
            var next = body
            // Kept by the server: identity, the status (when it is a subresource), the generation.
            for member in ["uid", "creationTimestamp", "generation", "namespace"] {
                next[path: ["metadata", member]] = stored[path: ["metadata", member]]
            }
            next["apiVersion"] = .string(kind.apiVersion)
            next["kind"] = .string(kind.kind)
            if kind.hasStatus { next["status"] = stored["status"] }
            if kind.hasGeneration && Self.specPart(next) != Self.specPart(stored) {
                next[path: ["metadata", "generation"]] = .int((stored[path: ["metadata", "generation"]]?.int ?? 0) + 1)
            }
            stored = next
        }
        stored[path: ["metadata", "resourceVersion"]] = before[path: ["metadata", "resourceVersion"]]
        if stored == before { return (200, before) }  // no-op: no new resourceVersion, no event
        stored[path: ["metadata", "resourceVersion"]] = .string(nextRevision(&state))
        state.objects[key] = stored
        emit(&state, resource: key.resource, namespace: key.namespace, type: "MODIFIED", object: stored)
        return (200, stored)
    }

    /// Everything but `metadata` and `status`: what bumps `generation`.
    static func specPart(_ object: JSON) -> JSON {
        var copy = object
        copy["metadata"] = nil
        copy["status"] = nil
        return copy
    }

    func delete(_ state: inout State, key: Key) -> (Int, JSON) {
        guard var stored = state.objects.removeValue(forKey: key) else {
            return (404, Self.status(404, "NotFound", "\(key.resource) \"\(key.name)\" not found"))
        }
        stored[path: ["metadata", "resourceVersion"]] = .string(nextRevision(&state))
        emit(&state, resource: key.resource, namespace: key.namespace, type: "DELETED", object: stored)
        // The garbage collector: dependents go too.
        let uid = stored[path: ["metadata", "uid"]]?.string
        let dependents = state.objects.filter { entry in
            (entry.value[path: ["metadata", "ownerReferences"]]?.array ?? []).contains { $0["uid"]?.string == uid }
        }
        for dependent in dependents.keys { _ = delete(&state, key: dependent) }
        return (200, ["kind": "Status", "apiVersion": "v1", "status": "Success", "details": ["name": .string(key.name)]])
    }

    func emit(_ state: inout State, resource: String, namespace: String, type: String, object: JSON) {
        let event = Event(revision: state.revision, resource: resource, namespace: namespace, type: type, object: object)
        state.history.append(event)
        for watcher in state.watchers.values where Self.matches(watcher, event) {
            write(watcher.channel, event: type, object: object)
        }
    }

    static func matches(_ watcher: Watcher, _ event: Event) -> Bool {
        watcher.resource == event.resource && (watcher.namespace == nil || watcher.namespace == event.namespace)
            && labelsMatch(event.object, watcher.selector)
    }

    static func labelsMatch(_ object: JSON, _ selector: [(String, String)]) -> Bool {
        selector.allSatisfy { object[path: ["metadata", "labels", $0.0]]?.string == $0.1 }
    }

    func write(_ channel: any Channel, event: String, object: JSON) {
        let bytes = JSON.object(["type": .string(event), "object": object]).encoded() + [UInt8(ascii: "\n")]
        channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(bytes: bytes))), promise: nil)
    }

    func end(_ channel: any Channel) {
        channel.writeAndFlush(HTTPServerResponsePart.end(nil)).whenComplete { _ in channel.close(promise: nil) }
    }

    static func now() -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: Date())
    }

    // MARK: Requests

    enum Response {
        case full(Int, JSON)
        /// A plain-text answer (a pod's log).
        case text(Int, String)
        /// A watch was registered and its head written.
        case streaming
    }

    struct Route {
        var resource: String
        var namespace: String?
        var name: String?
        var status: Bool
    }

    /// /api/v1[/namespaces/NS]/PLURAL[/NAME[/status]] and /apis/GROUP/VERSION/...
    static func route(_ path: String) -> Route? {
        var parts = path.split(separator: "/").map { $0.removingPercentEncoding ?? String($0) }
        var group: String
        if parts.first == "api", parts.count >= 2 {
            group = ""
            parts.removeFirst(2)
        } else if parts.first == "apis", parts.count >= 3 {
            group = parts[1]
            parts.removeFirst(3)
        } else {
            return nil
        }
        var namespace: String?
        if parts.first == "namespaces", parts.count >= 3 {
            namespace = parts[1]
            parts.removeFirst(2)
        }
        guard let plural = parts.first, parts.count <= 3 else { return nil }
        if parts.count == 3 && parts[2] != "status" { return nil }
        return Route(
            resource: "\(group)/\(plural)", namespace: namespace, name: parts.count >= 2 ? parts[1] : nil, status: parts.count == 3)
    }

    func handle(method: HTTPMethod, uri: String, headers: HTTPHeaders, body: [UInt8], channel: any Channel) -> Response {
        let path = String(uri.split(separator: "?", maxSplits: 1).first ?? "")
        let queryText = uri.contains("?") ? String(uri.split(separator: "?", maxSplits: 1)[1]) : ""
        var query: [String: String] = [:]
        for pair in queryText.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1).map { $0.removingPercentEncoding ?? String($0) }
            query[parts[0]] = parts.count > 1 ? parts[1] : ""
        }
        let authorization = headers.first(name: "Authorization")
        let token = authorization?.hasPrefix("Bearer ") == true ? String(authorization!.dropFirst(7)) : nil
        state.withLock { $0.requests.append(Request(method: method.rawValue, path: path, query: queryText, token: token)) }
        if let tokens, !tokens.contains(token ?? "") {
            return .full(401, Self.status(401, "Unauthorized", "Unauthorized"))
        }
        // /api/v1/namespaces/NS/pods/NAME/log: what the kubelet gave for the pod.
        let segments = path.split(separator: "/").map(String.init)
        if segments.count == 7, segments[0] == "api", segments[2] == "namespaces", segments[4] == "pods", segments[6] == "log" {
            guard method == .GET else { return .full(405, Self.status(405, "MethodNotAllowed", "\(method) is not supported here")) }
            let log = state.withLock { $0.podLogs["\(segments[3])/\(segments[5])"] }
            guard let log else { return .full(404, Self.status(404, "NotFound", "pods \"\(segments[5])\" not found")) }
            return .text(200, log)
        }
        let servesKEDA = state.withLock { $0.servesKEDA }
        if path == "/apis/keda.sh/v1alpha1" {
            guard servesKEDA else { return .full(404, Self.status(404, "NotFound", "the server could not find the requested resource")) }
            return .full(
                200,
                [
                    "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "keda.sh/v1alpha1",
                    "resources": [
                        [
                            "name": "scaledobjects", "namespaced": true, "kind": "ScaledObject",
                            "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
                        ]
                    ],
                ])
        }
        guard let route = Self.route(path), Self.kinds[route.resource] != nil, servesKEDA || !route.resource.hasPrefix("keda.sh/") else {
            return .full(404, Self.status(404, "NotFound", "the server could not find the requested resource"))
        }
        let parsed: JSON? = body.isEmpty ? nil : try? JSON.parse(body)
        if !body.isEmpty && parsed == nil { return .full(400, Self.status(400, "BadRequest", "the body is not JSON")) }
        return state.withLock { state -> Response in
            switch (method, route.name) {
            case (.GET, nil):
                if query["watch"] == "true" || query["watch"] == "1" {
                    return watch(&state, route: route, query: query, channel: channel)
                }
                return .full(200, list(state, route: route, selector: Self.selector(query["labelSelector"])))
            case (.GET, let name?):
                let key = Key(resource: route.resource, namespace: route.namespace ?? "", name: name)
                guard let object = state.objects[key] else {
                    return .full(404, Self.status(404, "NotFound", "\(route.resource) \"\(name)\" not found"))
                }
                return .full(200, object)
            case (.POST, nil):
                guard let namespace = route.namespace, let parsed else {
                    return .full(400, Self.status(400, "BadRequest", "a namespace and a body are needed"))
                }
                let (code, object) = create(&state, resource: route.resource, namespace: namespace, object: parsed)
                return .full(code, object)
            case (.PUT, let name?):
                guard let parsed else { return .full(400, Self.status(400, "BadRequest", "a body is needed")) }
                let (code, object) = replace(
                    &state, key: Key(resource: route.resource, namespace: route.namespace ?? "", name: name), body: parsed,
                    status: route.status)
                return .full(code, object)
            case (.PATCH, let name?):
                guard headers.first(name: "Content-Type")?.hasPrefix("application/merge-patch+json") == true else {
                    return .full(
                        415,
                        Self.status(
                            415, "UnsupportedMediaType",
                            "the body of the request was in an unknown format - accepted media types include: application/merge-patch+json")
                    )
                }
                guard let parsed else { return .full(400, Self.status(400, "BadRequest", "a body is needed")) }
                let key = Key(resource: route.resource, namespace: route.namespace ?? "", name: name)
                guard let stored = state.objects[key] else {
                    return .full(404, Self.status(404, "NotFound", "\(route.resource) \"\(name)\" not found"))
                }
                var merged = stored.merging(patch: parsed)
                // A patch without a resourceVersion is unconditional.
                if parsed[path: ["metadata", "resourceVersion"]] == nil {
                    merged[path: ["metadata", "resourceVersion"]] = stored[path: ["metadata", "resourceVersion"]]
                }
                let (code, object) = replace(&state, key: key, body: merged, status: route.status)
                return .full(code, object)
            case (.DELETE, let name?):
                let (code, object) = delete(&state, key: Key(resource: route.resource, namespace: route.namespace ?? "", name: name))
                return .full(code, object)
            default:
                return .full(405, Self.status(405, "MethodNotAllowed", "\(method) is not supported here"))
            }
        }
    }

    static func selector(_ text: String?) -> [(String, String)] {
        guard let text, !text.isEmpty else { return [] }
        return text.split(separator: ",").map { term in
            let parts = term.split(separator: "=", maxSplits: 1).map(String.init)
            return (parts[0], parts.count > 1 ? parts[1] : "")
        }
    }

    func list(_ state: State, route: Route, selector: [(String, String)]) -> JSON {
        let kind = Self.kinds[route.resource]!
        let items = state.objects
            .filter {
                $0.key.resource == route.resource && (route.namespace == nil || $0.key.namespace == route.namespace)
                    && Self.labelsMatch($0.value, selector)
            }
            .sorted { ($0.key.namespace, $0.key.name) < ($1.key.namespace, $1.key.name) }
            .map(\.value)
        return [
            "apiVersion": .string(kind.apiVersion), "kind": .string(kind.kind + "List"),
            "metadata": ["resourceVersion": .string(String(state.revision))], "items": .array(items),
        ]
    }

    func watch(_ state: inout State, route: Route, query: [String: String], channel: any Channel) -> Response {
        let watcher = Watcher(
            resource: route.resource, namespace: route.namespace, selector: Self.selector(query["labelSelector"]),
            bookmarks: query["allowWatchBookmarks"] == "true", channel: channel)
        let from = query["resourceVersion"].flatMap { Int($0) } ?? 0
        if from != 0 && from < state.compactedBelow && !state.goneInStream {
            state.gone += 1
            return .full(410, Self.status(410, "Expired", "too old resource version: \(from) (\(state.compactedBelow))"))
        }
        var head = HTTPHeaders()
        head.add(name: "Content-Type", value: "application/json")
        head.add(name: "Transfer-Encoding", value: "chunked")
        head.add(name: "Connection", value: "close")
        channel.writeAndFlush(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: head)), promise: nil)
        if from != 0 && from < state.compactedBelow {
            write(
                channel, event: "ERROR", object: Self.status(410, "Expired", "too old resource version: \(from) (\(state.compactedBelow))"))
            state.gone += 1
            end(channel)
            return .streaming
        }
        if from == 0 {
            // No version: the current state as ADDED events, then what follows.
            for (key, object) in state.objects
            where key.resource == route.resource && (route.namespace == nil || key.namespace == route.namespace)
                && Self.labelsMatch(object, watcher.selector)
            {
                write(channel, event: "ADDED", object: object)
            }
        } else {
            for event in state.history where event.revision > from && Self.matches(watcher, event) {
                write(channel, event: event.type, object: event.object)
            }
        }
        state.watchers[ObjectIdentifier(channel)] = watcher
        if let seconds = query["timeoutSeconds"].flatMap({ Int64($0) }) {
            channel.eventLoop.scheduleTask(in: .seconds(seconds)) { [self] in
                let open = self.state.withLock { $0.watchers.removeValue(forKey: ObjectIdentifier(channel)) != nil }
                if open { self.end(channel) }
            }
        }
        return .streaming
    }

    func channelClosed(_ channel: any Channel) {
        state.withLock { _ = $0.watchers.removeValue(forKey: ObjectIdentifier(channel)) }
    }
}

final class FakeKubernetesHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let server: FakeKubernetes
    var head: HTTPRequestHead?
    var body: [UInt8] = []

    init(server: FakeKubernetes) {
        self.server = server
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = []
        case .body(let buffer):
            body += buffer.readableBytesView
        case .end:
            guard let head else { return }
            self.head = nil
            switch server.handle(method: head.method, uri: head.uri, headers: head.headers, body: body, channel: context.channel) {
            case .streaming:
                break
            case .text(let code, let text):
                let bytes = Array(text.utf8)
                var headers = HTTPHeaders()
                headers.add(name: "Content-Type", value: "text/plain")
                headers.add(name: "Content-Length", value: String(bytes.count))
                context.write(
                    wrapOutboundOut(
                        .head(HTTPResponseHead(version: head.version, status: HTTPResponseStatus(statusCode: code), headers: headers))),
                    promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: bytes)))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            case .full(let code, let json):
                let bytes = json.encoded()
                var headers = HTTPHeaders()
                headers.add(name: "Content-Type", value: "application/json")
                headers.add(name: "Content-Length", value: String(bytes.count))
                context.write(
                    wrapOutboundOut(
                        .head(HTTPResponseHead(version: head.version, status: HTTPResponseStatus(statusCode: code), headers: headers))),
                    promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: bytes)))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        // Later, not now: a close can come from inside the server's lock (ending a watch).
        let server = self.server
        let channel = context.channel
        context.eventLoop.execute { server.channelClosed(channel) }
        context.fireChannelInactive()
    }
}

extension FakeKubernetes {
    /// Sets the log the pods/log subresource answers for a pod.
    func setPodLog(_ namespace: String, _ name: String, _ text: String) {
        state.withLock { $0.podLogs["\(namespace)/\(name)"] = text }
    }

    /// Installs (or removes) KEDA's API: discovery and the ScaledObject resource.
    func setServesKEDA(_ served: Bool) {
        state.withLock { $0.servesKEDA = served }
    }
}

extension FakeKubernetes {
    /// The last events (revision, type, resource, name), for failure messages.
    func recentHistory(_ count: Int = 8) -> [String] {
        state.withLock { state in
            state.history.suffix(count).map {
                "\($0.revision) \($0.type) \($0.resource) \($0.object[path: ["metadata", "name"]]?.string ?? "")"
            }
        }
    }
}
