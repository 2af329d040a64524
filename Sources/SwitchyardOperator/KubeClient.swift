import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL
import Synchronization

/// A failed API call: the server's `Status` (code, reason, message), or a transport failure.
public struct KubeError: Error, CustomStringConvertible, Sendable {
    /// HTTP status; 0 when no response arrived.
    public var code: Int
    /// The Status object's `reason` (`NotFound`, `AlreadyExists`, `Conflict`, `Expired`, ...).
    public var reason: String
    public var message: String

    public init(code: Int, reason: String, message: String) {
        self.code = code
        self.reason = reason
        self.message = message
    }

    public var isNotFound: Bool { code == 404 }
    public var isConflict: Bool { code == 409 }
    public var isGone: Bool { code == 410 }
    public var description: String { code == 0 ? message : "\(code) \(reason): \(message)" }

    init(status: JSON, fallbackCode: Int) {
        self.init(
            code: status["code"]?.int ?? fallbackCode,
            reason: status["reason"]?.string ?? "",
            message: status["message"]?.string ?? status.text)
    }
}

/// A kind of object and where its collection lives in the API.
public struct ResourceType: Sendable, Hashable {
    public var group: String
    public var version: String
    /// Plural, as in the URL.
    public var plural: String
    public var kind: String

    public init(group: String, version: String, plural: String, kind: String) {
        self.group = group
        self.version = version
        self.plural = plural
        self.kind = kind
    }

    public var apiVersion: String { group.isEmpty ? version : "\(group)/\(version)" }

    /// The collection's path: in one namespace, or across all when `namespace` is nil.
    public func path(namespace: String?, name: String? = nil, subresource: String? = nil) -> String {
        var path = group.isEmpty ? "/api/\(version)" : "/apis/\(group)/\(version)"
        if let namespace { path += "/namespaces/\(namespace.percentEscaped)" }
        path += "/\(plural)"
        if let name { path += "/\(name.percentEscaped)" }
        if let subresource { path += "/\(subresource)" }
        return path
    }

    public static let connector = ResourceType(group: "switchyard.dev", version: "v1alpha1", plural: "connectors", kind: "Connector")
    public static let configMap = ResourceType(group: "", version: "v1", plural: "configmaps", kind: "ConfigMap")
    public static let service = ResourceType(group: "", version: "v1", plural: "services", kind: "Service")
    public static let deployment = ResourceType(group: "apps", version: "v1", plural: "deployments", kind: "Deployment")
    public static let pod = ResourceType(group: "", version: "v1", plural: "pods", kind: "Pod")
    public static let podDisruptionBudget = ResourceType(
        group: "policy", version: "v1", plural: "poddisruptionbudgets", kind: "PodDisruptionBudget")
    public static let horizontalPodAutoscaler = ResourceType(
        group: "autoscaling", version: "v2", plural: "horizontalpodautoscalers", kind: "HorizontalPodAutoscaler")
    public static let triggerAuthentication = ResourceType(
        group: "keda.sh", version: "v1alpha1", plural: "triggerauthentications", kind: "TriggerAuthentication")
    public static let scaledObject = ResourceType(group: "keda.sh", version: "v1alpha1", plural: "scaledobjects", kind: "ScaledObject")
    public static let job = ResourceType(group: "batch", version: "v1", plural: "jobs", kind: "Job")
    public static let lease = ResourceType(group: "coordination.k8s.io", version: "v1", plural: "leases", kind: "Lease")
}

/// One event of a watch stream.
public struct WatchEvent: Sendable {
    public enum Kind: String, Sendable {
        case added = "ADDED", modified = "MODIFIED", deleted = "DELETED", bookmark = "BOOKMARK", error = "ERROR"
    }
    public var type: Kind
    public var object: JSON
}

/// A Kubernetes API client on AsyncHTTPClient: JSON requests, and watches read as one JSON
/// event per line.
public final class KubeClient: Sendable {
    let config: ClusterConfig
    let http: HTTPClient
    let logger: Logger
    /// The token read from `config.tokenFile`, with when it was read.
    let tokenCache = Mutex<(token: String?, readAt: ContinuousClock.Instant?)>((nil, nil))
    /// Ordinary requests give up after this long.
    let requestTimeout: TimeAmount

    /// `connectTimeout` bounds each connection attempt; a TLS handshake that fails is retried
    /// until it passes.
    public init(config: ClusterConfig, logger: Logger, requestTimeout: TimeAmount = .seconds(30), connectTimeout: TimeAmount = .seconds(10))
        throws
    {
        self.config = config
        self.logger = logger
        self.requestTimeout = requestTimeout
        var configuration = HTTPClient.Configuration(
            // Watches stay open for minutes; a connection silent for longer than a watch lasts
            // (300 s, and the server sends bookmarks meanwhile) is dead.
            timeout: .init(connect: connectTimeout, read: .seconds(360)),
            decompression: .disabled)
        configuration.redirectConfiguration = .disallow
        if config.server.hasPrefix("https://") {
            var tls = TLSConfiguration.makeClientConfiguration()
            if let ca = config.certificateAuthority {
                do {
                    tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(ca))
                } catch {
                    throw ConfigError("the cluster's CA certificate is not PEM: \(error)")
                }
            }
            if config.insecureSkipTLSVerify { tls.certificateVerification = .none }
            if let certificate = config.clientCertificate, let key = config.clientKey {
                do {
                    tls.certificateChain = try NIOSSLCertificate.fromPEMBytes(certificate).map { .certificate($0) }
                    tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: key, format: .pem))
                } catch {
                    throw ConfigError("the client certificate or key is not PEM: \(error)")
                }
            }
            configuration.tlsConfiguration = tls
        }
        self.http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }

    public func shutdown() async {
        try? await http.shutdown()
    }

    /// The bearer token: inline, or the token file (read again once a minute, as tokens rotate).
    func bearerToken() -> String? {
        if let token = config.token { return token }
        guard let file = config.tokenFile else { return nil }
        let now = ContinuousClock.now
        if let cached = tokenCache.withLock({ state -> String? in
            if let readAt = state.readAt, now - readAt < .seconds(60) { return state.token }
            return nil
        }) {
            return cached
        }
        let token = FileManager.default.contents(atPath: file).map {
            String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        tokenCache.withLock { $0 = (token, now) }
        return token
    }

    func makeRequest(_ method: HTTPMethod, _ path: String, query: [(String, String)], body: JSON?, contentType: String) -> HTTPClientRequest
    {
        var url = config.server + path
        if !query.isEmpty {
            url += "?" + query.map { "\($0.0.percentEscaped)=\($0.1.percentEscaped)" }.joined(separator: "&")
        }
        var request = HTTPClientRequest(url: url)
        request.method = method
        request.headers.add(name: "Accept", value: "application/json")
        request.headers.add(name: "User-Agent", value: "switchyard-operator")
        if let token = bearerToken() { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let body {
            let bytes = body.encoded()
            request.headers.add(name: "Content-Type", value: contentType)
            request.body = .bytes(ByteBuffer(bytes: bytes))
        }
        return request
    }

    /// One request; a response other than 2xx is thrown as the server's Status.
    public func request(
        _ method: HTTPMethod, _ path: String, query: [(String, String)] = [], body: JSON? = nil, contentType: String = "application/json"
    ) async throws -> JSON {
        let bytes = try await send(method, path, query: query, body: body, contentType: contentType)
        return (try? JSON.parse(bytes.readableBytesView)) ?? .null
    }

    /// The body of a 2xx answer; any other answer is thrown as the server's Status.
    func send(
        _ method: HTTPMethod, _ path: String, query: [(String, String)] = [], body: JSON? = nil, contentType: String = "application/json",
        limit: Int = 64 << 20
    ) async throws -> ByteBuffer {
        let request = makeRequest(method, path, query: query, body: body, contentType: contentType)
        let response: HTTPClientResponse
        let bytes: ByteBuffer
        do {
            response = try await http.execute(request, timeout: requestTimeout, logger: nil)
            bytes = try await response.body.collect(upTo: limit)
        } catch {
            throw KubeError(code: 0, reason: "Transport", message: "\(method) \(path): \(error)")
        }
        guard (200..<300).contains(Int(response.status.code)) else {
            let json = (try? JSON.parse(bytes.readableBytesView)) ?? .null
            if json["kind"]?.string == "Status" { throw KubeError(status: json, fallbackCode: Int(response.status.code)) }
            throw KubeError(
                code: Int(response.status.code), reason: response.status.reasonPhrase,
                message: "\(method) \(path): \(String(buffer: bytes).prefix(500))")
        }
        return bytes
    }

    /// The log of a pod's container (its standard output and error), up to `limitBytes`.
    public func podLog(namespace: String, name: String, container: String? = nil, limitBytes: Int = 4 << 20) async throws -> String {
        var query: [(String, String)] = [("limitBytes", String(limitBytes))]
        if let container { query.append(("container", container)) }
        let bytes = try await send(
            .GET, ResourceType.pod.path(namespace: namespace, name: name, subresource: "log"), query: query, limit: limitBytes + 65536)
        return String(buffer: bytes)
    }

    // MARK: Typed calls

    public func get(_ type: ResourceType, namespace: String, name: String) async throws -> JSON {
        try await request(.GET, type.path(namespace: namespace, name: name))
    }

    /// The object, or nil when it does not exist.
    public func getIfExists(_ type: ResourceType, namespace: String, name: String) async throws -> JSON? {
        do {
            return try await get(type, namespace: namespace, name: name)
        } catch let error as KubeError where error.isNotFound {
            return nil
        }
    }

    public func list(_ type: ResourceType, namespace: String?, labelSelector: String? = nil) async throws -> JSON {
        var query: [(String, String)] = []
        if let labelSelector { query.append(("labelSelector", labelSelector)) }
        return try await request(.GET, type.path(namespace: namespace), query: query)
    }

    public func create(_ type: ResourceType, namespace: String, _ object: JSON) async throws -> JSON {
        try await request(.POST, type.path(namespace: namespace), body: object)
    }

    /// PUT: the object's `metadata.resourceVersion` makes it conditional (409 when stale).
    public func replace(_ type: ResourceType, namespace: String, name: String, _ object: JSON, subresource: String? = nil) async throws
        -> JSON
    {
        try await request(.PUT, type.path(namespace: namespace, name: name, subresource: subresource), body: object)
    }

    /// A JSON merge patch (RFC 7386).
    public func mergePatch(_ type: ResourceType, namespace: String, name: String, _ patch: JSON, subresource: String? = nil) async throws
        -> JSON
    {
        try await request(
            .PATCH, type.path(namespace: namespace, name: name, subresource: subresource), body: patch,
            contentType: "application/merge-patch+json")
    }

    /// Deletes with background propagation (dependents are collected by the garbage collector).
    public func delete(_ type: ResourceType, namespace: String, name: String) async throws {
        _ = try await request(
            .DELETE, type.path(namespace: namespace, name: name),
            body: ["kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"])
    }

    // MARK: Watch

    /// Watches a collection from `resourceVersion` (with bookmarks). The server ends the stream
    /// after about `timeoutSeconds`. A 410 answer is thrown as a `KubeError` with code 410; an
    /// in-stream ERROR event is delivered as an event (its object is the Status).
    public func watch(
        _ type: ResourceType, namespace: String?, resourceVersion: String, labelSelector: String? = nil, timeoutSeconds: Int = 300,
        onEvent: (WatchEvent) async throws -> Void
    ) async throws {
        var query: [(String, String)] = [
            ("watch", "true"), ("resourceVersion", resourceVersion), ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", String(timeoutSeconds)),
        ]
        if let labelSelector { query.append(("labelSelector", labelSelector)) }
        let path = type.path(namespace: namespace)
        let request = makeRequest(.GET, path, query: query, body: nil, contentType: "application/json")
        let response: HTTPClientResponse
        do {
            response = try await http.execute(request, timeout: .seconds(Int64(timeoutSeconds) + 30), logger: nil)
        } catch {
            throw KubeError(code: 0, reason: "Transport", message: "watch \(path): \(error)")
        }
        guard response.status == .ok else {
            let bytes = (try? await response.body.collect(upTo: 1 << 20)) ?? ByteBuffer()
            let json = (try? JSON.parse(bytes.readableBytesView)) ?? .null
            if json["kind"]?.string == "Status" { throw KubeError(status: json, fallbackCode: Int(response.status.code)) }
            throw KubeError(code: Int(response.status.code), reason: response.status.reasonPhrase, message: "watch \(path)")
        }
        var splitter = LineSplitter()
        var chunks = response.body.makeAsyncIterator()
        while true {
            let chunk: ByteBuffer?
            do {
                chunk = try await chunks.next()
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                throw KubeError(code: 0, reason: "Transport", message: "watch \(path): \(error)")
            }
            guard let chunk else { break }
            // What `onEvent` throws goes to the caller as it is.
            for line in splitter.feed(chunk) {
                try await onEvent(try Self.event(line, path: path))
            }
        }
        if let rest = splitter.finish() {
            try await onEvent(try Self.event(rest, path: path))
        }
    }

    static func event(_ line: [UInt8], path: String) throws -> WatchEvent {
        guard let json = try? JSON.parse(line), let typeName = json["type"]?.string, let object = json["object"] else {
            throw KubeError(
                code: 0, reason: "BadWatchEvent",
                message: "watch \(path): cannot read the event \(String(decoding: line.prefix(200), as: UTF8.self))")
        }
        guard let type = WatchEvent.Kind(rawValue: typeName) else {
            throw KubeError(code: 0, reason: "BadWatchEvent", message: "watch \(path): unknown event type \(typeName)")
        }
        return WatchEvent(type: type, object: object)
    }
}

/// Splits a byte stream into newline-terminated lines (a watch sends one JSON event per line;
/// chunks split events anywhere).
struct LineSplitter {
    var pending: [UInt8] = []

    mutating func feed(_ buffer: ByteBuffer) -> [[UInt8]] {
        var lines: [[UInt8]] = []
        for byte in buffer.readableBytesView {
            if byte == UInt8(ascii: "\n") {
                if !pending.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\r") }) { lines.append(pending) }
                pending.removeAll(keepingCapacity: true)
            } else {
                pending.append(byte)
            }
        }
        return lines
    }

    mutating func finish() -> [UInt8]? {
        defer { pending = [] }
        return pending.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\r") }) ? nil : pending
    }
}

extension String {
    /// Percent-escapes everything but unreserved characters (RFC 3986).
    var percentEscaped: String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return addingPercentEncoding(withAllowedCharacters: allowed) ?? self
    }
}
