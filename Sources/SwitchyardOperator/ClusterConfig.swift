import Foundation
import Yams

/// Where the Kubernetes API server is and how to authenticate to it.
///
/// Two sources: the pod's service account (in-cluster) and a kubeconfig file. From a kubeconfig
/// the current context (or a named one) is used, with its cluster's `server`,
/// `certificate-authority` or `certificate-authority-data`, `insecure-skip-tls-verify`, and
/// its user's `token`, `tokenFile`, `client-certificate(-data)` and `client-key(-data)`.
/// Not supported: `exec` and `auth-provider` plugins, `username`/`password`, proxies and
/// `tls-server-name`; a kubeconfig that needs them is refused with its path named.
public struct ClusterConfig: Sendable, Equatable {
    /// `https://HOST:PORT` (or `http://` for a local test server).
    public var server: String
    /// PEM bundle of the certificate authorities to trust; nil: the system's roots.
    public var certificateAuthority: [UInt8]?
    public var insecureSkipTLSVerify = false
    /// A bearer token given inline.
    public var token: String?
    /// A file holding the bearer token, read again when it changes (service account tokens rotate).
    public var tokenFile: String?
    /// PEM client certificate chain and private key.
    public var clientCertificate: [UInt8]?
    public var clientKey: [UInt8]?
    /// The namespace the pod runs in (in-cluster) or the context's namespace.
    public var namespace: String?

    public init(server: String, certificateAuthority: [UInt8]? = nil, token: String? = nil) {
        self.server = server
        self.certificateAuthority = certificateAuthority
        self.token = token
    }

    public static let serviceAccountDirectory = "/var/run/secrets/kubernetes.io/serviceaccount"

    /// The service account's token and CA, and `KUBERNETES_SERVICE_HOST`/`_PORT`.
    public static func inCluster(environment: [String: String], directory: String = serviceAccountDirectory) throws -> ClusterConfig {
        guard let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty,
            let port = environment["KUBERNETES_SERVICE_PORT"], !port.isEmpty
        else {
            throw ConfigError(
                "not in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set (use --kubeconfig outside a cluster)")
        }
        let tokenPath = directory + "/token"
        guard FileManager.default.isReadableFile(atPath: tokenPath) else {
            throw ConfigError("\(tokenPath): the service account token cannot be read (is automountServiceAccountToken off?)")
        }
        let caPath = directory + "/ca.crt"
        guard let ca = FileManager.default.contents(atPath: caPath) else {
            throw ConfigError("\(caPath): the cluster's CA certificate cannot be read")
        }
        let hostPart = host.contains(":") ? "[\(host)]" : host
        var config = ClusterConfig(server: "https://\(hostPart):\(port)", certificateAuthority: Array(ca))
        config.tokenFile = tokenPath
        if let namespace = FileManager.default.contents(atPath: directory + "/namespace") {
            config.namespace = String(decoding: namespace, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return config
    }

    /// Reads a kubeconfig file; `context` overrides its `current-context`.
    public static func kubeconfig(path: String, context: String? = nil) throws -> ClusterConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError("\(path): cannot read the kubeconfig file")
        }
        let root: JSON
        do {
            root = JSON.from(plain: try Yams.load(yaml: String(decoding: data, as: UTF8.self)))
        } catch {
            throw ConfigError("\(path): not valid YAML: \(error)")
        }
        let base = URL(fileURLWithPath: path).deletingLastPathComponent().path
        func named(_ list: String, _ name: String) throws -> JSON {
            guard let items = root[list]?.array else { throw ConfigError("\(path): \(list) is missing") }
            guard let index = items.firstIndex(where: { $0["name"]?.string == name }), let value = items[index][list.dropLastS()] else {
                throw ConfigError("\(path): \(list) has no entry named '\(name)'")
            }
            return value
        }
        func file(_ name: String, at place: String) throws -> [UInt8] {
            let resolved = name.hasPrefix("/") ? name : base + "/" + name
            guard let contents = FileManager.default.contents(atPath: resolved) else {
                throw ConfigError("\(path): \(place): cannot read \(resolved)")
            }
            return Array(contents)
        }
        func base64(_ text: String, at place: String) throws -> [UInt8] {
            guard let decoded = Data(base64Encoded: text.filter { !$0.isWhitespace }) else {
                throw ConfigError("\(path): \(place) is not base64")
            }
            return Array(decoded)
        }
        guard let contextName = context ?? root["current-context"]?.string, !contextName.isEmpty else {
            throw ConfigError("\(path): no current-context (name one with --context)")
        }
        let contextValue = try named("contexts", contextName)
        guard let clusterName = contextValue["cluster"]?.string else {
            throw ConfigError("\(path): contexts[\(contextName)].context.cluster is missing")
        }
        let cluster = try named("clusters", clusterName)
        let clusterPath = "clusters[\(clusterName)].cluster"
        guard let server = cluster["server"]?.string, server.hasPrefix("https://") || server.hasPrefix("http://") else {
            throw ConfigError("\(path): \(clusterPath).server must be an https:// (or http://) address")
        }
        var config = ClusterConfig(server: server.hasSuffix("/") ? String(server.dropLast()) : server)
        config.namespace = contextValue["namespace"]?.string
        if let data = cluster["certificate-authority-data"]?.string {
            config.certificateAuthority = try base64(data, at: "\(clusterPath).certificate-authority-data")
        } else if let name = cluster["certificate-authority"]?.string {
            config.certificateAuthority = try file(name, at: "\(clusterPath).certificate-authority")
        }
        config.insecureSkipTLSVerify = cluster["insecure-skip-tls-verify"]?.bool ?? false
        for unsupported in ["proxy-url", "tls-server-name"] where cluster[unsupported] != nil {
            throw ConfigError("\(path): \(clusterPath).\(unsupported) is not supported")
        }
        if let userName = contextValue["user"]?.string {
            let user = try named("users", userName)
            let userPath = "users[\(userName)].user"
            for unsupported in ["exec", "auth-provider", "username", "password"] where user[unsupported] != nil {
                throw ConfigError(
                    "\(path): \(userPath).\(unsupported) is not supported (use a token, a token file or a client certificate)")
            }
            config.token = user["token"]?.string
            if let tokenFile = user["tokenFile"]?.string {
                config.tokenFile = tokenFile.hasPrefix("/") ? tokenFile : base + "/" + tokenFile
            }
            if let data = user["client-certificate-data"]?.string {
                config.clientCertificate = try base64(data, at: "\(userPath).client-certificate-data")
            } else if let name = user["client-certificate"]?.string {
                config.clientCertificate = try file(name, at: "\(userPath).client-certificate")
            }
            if let data = user["client-key-data"]?.string {
                config.clientKey = try base64(data, at: "\(userPath).client-key-data")
            } else if let name = user["client-key"]?.string {
                config.clientKey = try file(name, at: "\(userPath).client-key")
            }
            if (config.clientCertificate == nil) != (config.clientKey == nil) {
                throw ConfigError("\(path): \(userPath) needs both a client certificate and its key")
            }
        }
        return config
    }
}

public struct ConfigError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension String {
    /// "clusters" -> "cluster": the member that holds a kubeconfig list entry's value.
    fileprivate func dropLastS() -> String { hasSuffix("s") ? String(dropLast()) : self }
}
