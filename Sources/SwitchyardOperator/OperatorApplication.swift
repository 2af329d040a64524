import Foundation
import Logging
import ServiceLifecycle
import SwitchyardConfig
import SwitchyardCore
import SwitchyardRuntime
import Yams

/// What `switchyard operator` is given on its command line.
public struct OperatorOptions: Sendable {
    public var namespace: String?
    public var kubeconfig: String?
    public var context: String?
    public var metricsListen = "0.0.0.0:8080"
    public var leaseName = "switchyard-operator"
    public var leaseNamespace: String?
    public var identity: String?
    public var image: String
    public var workers = 2
    public var logLevel = "info"
    public var logFormat = "auto"

    public init(image: String) {
        self.image = image
    }
}

/// The operator as a service of a ServiceGroup: SIGTERM cancels it, which releases the Lease.
struct OperatorService: Service {
    let theOperator: OperatorReplica

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await theOperator.run()
        }
        await theOperator.client.shutdown()
    }
}

/// `switchyard operator`: configuration, the metrics endpoint and the operator, until SIGTERM.
public enum OperatorApplication {
    /// Exit codes: 0 after SIGTERM, 2 for bad options or configuration, 1 for other failures.
    public static func run(options: OperatorOptions, registry: ConnectorRegistry, environment: [String: String]) async -> Int32 {
        LogSetup.bootstrap(format: options.logFormat, level: LogSetup.level(options.logLevel))
        MetricsSetup.bootstrap()
        let logger = Logger(label: "switchyard.operator")
        let config: ClusterConfig
        do {
            if let path = options.kubeconfig {
                config = try ClusterConfig.kubeconfig(path: path, context: options.context)
            } else {
                config = try ClusterConfig.inCluster(environment: environment)
            }
        } catch {
            writeError("switchyard operator: \(error)")
            return 2
        }
        guard let listen = ListenAddress(options.metricsListen) else {
            writeError("switchyard operator: --metrics-listen: expected HOST:PORT, such as 0.0.0.0:8080")
            return 2
        }
        let identity = options.identity ?? environment["POD_NAME"] ?? ProcessInfo.processInfo.hostName
        let leaseNamespace = options.leaseNamespace ?? environment["POD_NAMESPACE"] ?? config.namespace ?? "switchyard-system"
        let client: KubeClient
        do {
            client = try KubeClient(config: config, logger: logger)
        } catch {
            writeError("switchyard operator: \(error)")
            return 2
        }
        var settings = OperatorSettings(namespace: options.namespace, defaultImage: options.image)
        settings.workers = options.workers
        let theOperator = OperatorReplica(
            client: client, settings: settings,
            lease: LeaseSettings(name: options.leaseName, namespace: leaseNamespace, identity: identity),
            registry: registry, logger: logger)
        let endpoints = HealthEndpoints(
            readiness: {
                theOperator.elector.apiReachable ? (true, []) : (false, ["the Kubernetes API server did not answer the last Lease request"])
            },
            metrics: { MetricsSetup.render() })
        let group = ServiceGroup(
            configuration: .init(
                services: [
                    .init(service: HealthServer(host: listen.host, port: listen.port, endpoints: endpoints, logger: logger)),
                    .init(service: OperatorService(theOperator: theOperator), successTerminationBehavior: .gracefullyShutdownGroup),
                ],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        logger.info(
            "switchyard operator started",
            metadata: [
                "server": "\(config.server)", "namespace": "\(options.namespace ?? "(all)")",
                "lease": "\(leaseNamespace)/\(options.leaseName)",
                "identity": "\(identity)",
            ])
        do {
            try await group.run()
        } catch {
            logger.critical("operator failed", metadata: ["error": "\(error)"])
            return 1
        }
        logger.info("switchyard operator stopped")
        return 0
    }

    /// `switchyard operator render`: the objects the operator would write for a Connector file,
    /// as YAML documents. A resource without a uid gets a fixed placeholder one in its owner
    /// references; the namespace defaults to `default`.
    public static func render(text: String, registry: ConnectorRegistry, image: String, kedaAvailable: Bool = false) -> Result<
        [(kind: String, name: String, yaml: String)], RenderFailure
    > {
        let loaded: Any?
        do {
            loaded = try Yams.load(yaml: text)
        } catch {
            return .failure(RenderFailure(messages: ["not valid YAML: \(error)"]))
        }
        var connector = JSON.from(plain: loaded)
        if connector[path: ["metadata", "namespace"]] == nil { connector[path: ["metadata", "namespace"]] = "default" }
        if connector[path: ["metadata", "uid"]] == nil { connector[path: ["metadata", "uid"]] = "00000000-0000-0000-0000-000000000000" }
        if connector[path: ["metadata", "generation"]] == nil { connector[path: ["metadata", "generation"]] = 1 }
        switch ConnectorRenderer(registry: registry, defaultImage: image).render(connector, kedaAvailable: kedaAvailable) {
        case .invalid(let messages):
            return .failure(RenderFailure(messages: messages))
        case .valid(let rendered):
            var objects = [rendered.configMap]
            if rendered.state != "stopped" { objects.append(rendered.deployment) }
            objects += [rendered.service, rendered.podDisruptionBudget]
            if let scaler = rendered.scaler { objects.append(scaler) }
            objects += rendered.triggerAuthentications
            return .success(
                objects.map { object in
                    (
                        object["kind"]?.string ?? "", object[path: ["metadata", "name"]]?.string ?? "",
                        (try? Yams.dump(object: object.plain, width: -1, allowUnicode: true, sortKeys: true)) ?? object.text
                    )
                })
        }
    }

    public struct RenderFailure: Error, Sendable {
        public var messages: [String]
    }

    static func writeError(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }
}
