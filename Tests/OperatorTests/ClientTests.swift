import Foundation
import NIOCore
import NIOSSL
@testable import SwitchyardOperator
import Testing

@Suite("Kubernetes client and the fake API server")
struct ClientTests {
    @Test("writes: resourceVersion on each, 409 when stale or taken, generation only on spec, status apart, merge patch")
    func writeSemantics() async throws {
        try await withHarness { harness in
            let client = try harness.client()
            let created = try await client.create(.connector, namespace: "shop", connector("orders"))
            let version1 = try #require(created[path: ["metadata", "resourceVersion"]]?.string)
            #expect(created[path: ["metadata", "generation"]]?.int == 1)
            #expect(created[path: ["metadata", "uid"]]?.string?.isEmpty == false)

            // An existing name.
            await #expect(throws: KubeError.self) { _ = try await client.create(.connector, namespace: "shop", connector("orders")) }
            do {
                _ = try await client.create(.connector, namespace: "shop", connector("orders"))
            } catch let error as KubeError {
                #expect(error.code == 409)
                #expect(error.reason == "AlreadyExists")
            }

            // A metadata change: new resourceVersion, same generation.
            var labelled = created
            labelled[path: ["metadata", "labels", "team"]] = "shop"
            let afterLabel = try await client.replace(.connector, namespace: "shop", name: "orders", labelled)
            let version2 = try #require(afterLabel[path: ["metadata", "resourceVersion"]]?.string)
            #expect(version2 != version1)
            #expect(afterLabel[path: ["metadata", "generation"]]?.int == 1)

            // A stale resourceVersion.
            var stale = created
            stale[path: ["spec", "deployment", "replicas"]] = 9
            do {
                _ = try await client.replace(.connector, namespace: "shop", name: "orders", stale)
                Issue.record("a stale update was accepted")
            } catch let error as KubeError {
                #expect(error.code == 409)
                #expect(error.reason == "Conflict")
            }

            // A spec change: the generation goes up; status sent to the main endpoint is ignored.
            var changed = afterLabel
            changed[path: ["spec", "deployment", "replicas"]] = 3
            changed["status"] = ["observedGeneration": 99]
            let afterSpec = try await client.replace(.connector, namespace: "shop", name: "orders", changed)
            #expect(afterSpec[path: ["metadata", "generation"]]?.int == 2)
            #expect(afterSpec["status"] == nil)

            // The status subresource, by merge patch: status changes, spec and generation do not.
            let patched = try await client.mergePatch(
                .connector, namespace: "shop", name: "orders", ["status": ["observedGeneration": 2], "spec": ["state": "paused"]],
                subresource: "status")
            #expect(patched[path: ["status", "observedGeneration"]]?.int == 2)
            #expect(patched[path: ["spec", "state"]]?.string == "running")
            #expect(patched[path: ["metadata", "generation"]]?.int == 2)
            #expect(patched[path: ["metadata", "resourceVersion"]] != afterSpec[path: ["metadata", "resourceVersion"]])

            // Merge patch on the object: null removes a member.
            let merged = try await client.mergePatch(
                .connector, namespace: "shop", name: "orders", ["metadata": ["labels": ["team": nil, "tier": "gold"]]])
            #expect(merged[path: ["metadata", "labels"]] == ["tier": "gold"])
            #expect(merged[path: ["status", "observedGeneration"]]?.int == 2)

            // Missing objects, and deletion.
            #expect(try await client.getIfExists(.deployment, namespace: "shop", name: "orders") == nil)
            try await client.delete(.connector, namespace: "shop", name: "orders")
            #expect(try await client.getIfExists(.connector, namespace: "shop", name: "orders") == nil)
        }
    }

    @Test("watch: events from a resourceVersion, line by line; 410 as HTTP status")
    func watchEvents() async throws {
        try await withHarness { harness in
            let fake = harness.fake
            let client = try harness.client()
            let list = try await client.list(.connector, namespace: nil)
            let version = try #require(list[path: ["metadata", "resourceVersion"]]?.string)
            fake.create(.connector, "shop", connector("orders"))
            fake.update(.connector, "shop", "orders") { $0[path: ["spec", "state"]] = "paused" }
            fake.delete(.connector, "shop", "orders")
            var seen: [String] = []
            try await client.watch(.connector, namespace: "shop", resourceVersion: version, timeoutSeconds: 1) { event in
                seen.append(event.type.rawValue)
            }
            #expect(seen == ["ADDED", "MODIFIED", "DELETED"])

            fake.goneInStream = false
            fake.compact()
            do {
                try await client.watch(.connector, namespace: "shop", resourceVersion: version, timeoutSeconds: 1) { _ in }
                Issue.record("an expired version was watched")
            } catch let error as KubeError {
                #expect(error.isGone)
            }
            fake.goneInStream = true
            var errors: [JSON] = []
            try await client.watch(.connector, namespace: "shop", resourceVersion: version, timeoutSeconds: 1) { event in
                if event.type == .error { errors.append(event.object) }
            }
            #expect(errors.first?["code"]?.int == 410)
        }
    }

    @Test("a bearer token is sent; without the right one the server answers 401")
    func token() async throws {
        try await withHarness(tokens: ["secret"]) { harness in
            let good = try harness.client(token: "secret")
            _ = try await good.list(.connector, namespace: "shop")
            let bad = try harness.client(token: "wrong")
            do {
                _ = try await bad.list(.connector, namespace: "shop")
                Issue.record("a wrong token was accepted")
            } catch let error as KubeError {
                #expect(error.code == 401)
            }
        }
    }

    @Test("a kubeconfig file: current context, server, token; the operator runs through it")
    func kubeconfig() async throws {
        try await withHarness(tokens: ["from-kubeconfig"]) { harness in
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-kubeconfig-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let path = directory + "/config"
            let text = """
                apiVersion: v1
                kind: Config
                current-context: test
                clusters:
                  - name: other
                    cluster: {server: "https://192.0.2.1:6443"}
                  - name: fake
                    cluster:
                      server: \(harness.url)
                users:
                  - name: tester
                    user:
                      token: from-kubeconfig
                contexts:
                  - name: test
                    context: {cluster: fake, user: tester, namespace: shop}
                """
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            let config = try ClusterConfig.kubeconfig(path: path)
            #expect(config.server == harness.url)
            #expect(config.token == "from-kubeconfig")
            #expect(config.namespace == "shop")
            let client = try KubeClient(config: config, logger: testLogger)
            harness.clients.append(client)
            harness.fake.create(.connector, "shop", connector("orders"))
            _ = try harness.startOperator(identity: "a", client: client)
            try await eventually("the Deployment") { harness.fake.object(.deployment, "shop", "orders") != nil }
        }
    }

    @Test("kubeconfig: certificates from data and files; unsupported and missing parts are named")
    func kubeconfigVariants() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-kubeconfig-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Data("CA-PEM".utf8).write(to: URL(fileURLWithPath: directory + "/ca.crt"))
        try Data("KEY-PEM".utf8).write(to: URL(fileURLWithPath: directory + "/client.key"))
        let certificate = Data("CERT-PEM".utf8).base64EncodedString()
        func write(_ text: String) throws -> String {
            let path = directory + "/config-\(UUID().uuidString)"
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            return path
        }
        let path = try write(
            """
            current-context: c
            clusters: [{name: k, cluster: {server: "https://k.example:6443/", certificate-authority: ca.crt}}]
            users: [{name: u, user: {client-certificate-data: \(certificate), client-key: client.key}}]
            contexts: [{name: c, context: {cluster: k, user: u}}]
            """)
        let config = try ClusterConfig.kubeconfig(path: path)
        #expect(config.server == "https://k.example:6443")
        #expect(config.certificateAuthority == Array("CA-PEM".utf8))
        #expect(config.clientCertificate == Array("CERT-PEM".utf8))
        #expect(config.clientKey == Array("KEY-PEM".utf8))

        let exec = try write(
            """
            current-context: c
            clusters: [{name: k, cluster: {server: "https://k.example:6443"}}]
            users: [{name: u, user: {exec: {command: aws}}}]
            contexts: [{name: c, context: {cluster: k, user: u}}]
            """)
        #expect(throws: ConfigError.self) { try ClusterConfig.kubeconfig(path: exec) }
        do {
            _ = try ClusterConfig.kubeconfig(path: exec)
        } catch {
            #expect("\(error)".contains("users[u].user.exec is not supported"))
        }
        do {
            _ = try ClusterConfig.kubeconfig(path: path, context: "missing")
            Issue.record("a missing context was accepted")
        } catch {
            #expect("\(error)".contains("contexts has no entry named 'missing'"))
        }
    }

    @Test("in-cluster configuration: the service account's token, CA and namespace")
    func inCluster() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-sa-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Data("sa-token\n".utf8).write(to: URL(fileURLWithPath: directory + "/token"))
        try Data("CA".utf8).write(to: URL(fileURLWithPath: directory + "/ca.crt"))
        try Data("switchyard-system".utf8).write(to: URL(fileURLWithPath: directory + "/namespace"))
        let config = try ClusterConfig.inCluster(
            environment: ["KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"], directory: directory)
        #expect(config.server == "https://10.96.0.1:443")
        #expect(config.tokenFile == directory + "/token")
        #expect(config.certificateAuthority == Array("CA".utf8))
        #expect(config.namespace == "switchyard-system")
        let v6 = try ClusterConfig.inCluster(
            environment: ["KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"], directory: directory)
        #expect(v6.server == "https://[fd00::1]:443")
        #expect(throws: ConfigError.self) { try ClusterConfig.inCluster(environment: [:], directory: directory) }
    }

    @Test("watch events split across chunks are read line by line")
    func lineSplitting() throws {
        var splitter = LineSplitter()
        let text =
            #"{"type":"ADDED","object":{"a":1}}"# + "\n" + #"{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"7"}}}"# + "\n"
        let bytes = Array(text.utf8)
        var lines: [[UInt8]] = []
        for start in stride(from: 0, to: bytes.count, by: 5) {
            lines += splitter.feed(ByteBuffer(bytes: bytes[start..<min(start + 5, bytes.count)]))
        }
        #expect(splitter.finish() == nil)
        #expect(lines.count == 2)
        let events = try lines.map { try KubeClient.event($0, path: "/test") }
        #expect(events.map(\.type) == [.added, .bookmark])
        #expect(events[1].object[path: ["metadata", "resourceVersion"]]?.string == "7")
        #expect(throws: KubeError.self) { try KubeClient.event(Array(#"{"type":"SURPRISE","object":{}}"#.utf8), path: "/test") }
    }

    @Test("work queue: a key is queued once, re-queued when added while held, and backs off exponentially")
    func workQueue() async throws {
        let queue = WorkQueue(initialBackoff: .milliseconds(100), maxBackoff: .seconds(1))
        await queue.add("shop/a")
        await queue.add("shop/a")
        await queue.add("shop/b")
        #expect(await queue.depth == 2)
        let first = await queue.next()
        #expect(first == "shop/a")
        await queue.add("shop/a")  // held: comes back when done, not now
        #expect(await queue.next() == "shop/b")
        #expect(await queue.depth == 0)
        await queue.done("shop/a", failed: false)
        #expect(await queue.next() == "shop/a")
        await queue.done("shop/a", failed: false)
        await queue.done("shop/b", failed: false)
        #expect(await queue.backoff(attempts: 1) == .milliseconds(100))
        #expect(await queue.backoff(attempts: 3) == .milliseconds(400))
        #expect(await queue.backoff(attempts: 10) == .seconds(1))
        await queue.done("shop/c", failed: true)
        #expect(await queue.depth == 0)
        try await eventually("the failed key back") { await queue.depth == 1 }
        #expect(await queue.failureCount("shop/c") == 1)
        await queue.shutDown()
        #expect(await queue.next() == nil)
    }

    @Test("SHA-256 of known inputs")
    func sha256() {
        #expect(DocumentHash.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(DocumentHash.hex([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(
            DocumentHash.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    @Test("Lease times are MicroTime: six fractional digits, UTC")
    func microTime() {
        #expect(LeaderElector.microTime(Date(timeIntervalSince1970: 1_700_000_000.25)) == "2023-11-14T22:13:20.250000Z")
    }
}

@Suite("Kubernetes client over TLS")
struct TLSTests {
    /// The fake API server over TLS with the test CA's server certificate, asking for a client
    /// certificate from the same CA.
    static func serverContext() throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMBytes(Array(TestCertificates.serverCertificate.utf8)).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(TestCertificates.serverKey.utf8), format: .pem)))
        configuration.certificateVerification = .noHostnameVerification
        configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(TestCertificates.caCertificate.utf8)))
        return try NIOSSLContext(configuration: configuration)
    }

    func kubeconfig(_ url: String, cluster: String, user: String) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-tls-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/config"
        let text = """
            current-context: c
            clusters: [{name: k, cluster: {server: "\(url)", \(cluster)}}]
            users: [{name: u, user: {\(user)}}]
            contexts: [{name: c, context: {cluster: k, user: u}}]
            """
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    static func base64(_ text: String) -> String { Data(text.utf8).base64EncodedString() }

    @Test("client certificate and CA from a kubeconfig; a wrong or missing part fails the handshake")
    func mutualTLS() async throws {
        try await withHarness(tls: try Self.serverContext()) { harness in
            let ca = "certificate-authority-data: \(Self.base64(TestCertificates.caCertificate))"
            let user =
                "client-certificate-data: \(Self.base64(TestCertificates.clientCertificate)), client-key-data: \(Self.base64(TestCertificates.clientKey))"
            // A failed handshake is retried until the connect timeout: short for the clients that
            // must fail, long for those that must succeed on a loaded machine.
            func client(cluster: String, user: String, failing: Bool = false) throws -> KubeClient {
                let client = try KubeClient(
                    config: ClusterConfig.kubeconfig(path: kubeconfig(harness.url, cluster: cluster, user: user)), logger: testLogger,
                    requestTimeout: .seconds(15), connectTimeout: failing ? .seconds(2) : .seconds(10))
                harness.clients.append(client)
                return client
            }
            #expect(harness.url.hasPrefix("https://"))
            let good = try client(cluster: ca, user: user)
            let list = try await good.list(.connector, namespace: "shop")
            #expect(list["kind"]?.string == "ConnectorList")

            // The server's certificate is verified against the CA, not skipped.
            let insecure = try client(cluster: "insecure-skip-tls-verify: true", user: user)
            _ = try await insecure.list(.connector, namespace: "shop")
            let untrusted = try client(
                cluster: "certificate-authority-data: \(Self.base64(TestCertificates.clientCertificate))", user: user, failing: true)
            let untrustedError = await #expect(throws: KubeError.self) { _ = try await untrusted.list(.connector, namespace: "shop") }
            #expect(untrustedError?.code == 0)
            // The server asks for a client certificate.
            let anonymous = try client(cluster: ca, user: "token: t", failing: true)
            let anonymousError = await #expect(throws: KubeError.self) { _ = try await anonymous.list(.connector, namespace: "shop") }
            #expect(anonymousError?.code == 0)
            // For the reasons meant, not a timeout.
            #expect(untrustedError?.message.contains("CERTIFICATE_VERIFY_FAILED") == true, "\(String(describing: untrustedError))")
            #expect(anonymousError?.message.contains("CERTIFICATE_REQUIRED") == true, "\(String(describing: anonymousError))")
            #expect(harness.fake.requests.count == 2)
        }
    }
}
