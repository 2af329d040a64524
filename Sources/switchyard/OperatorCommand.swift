import ArgumentParser
import Foundation
import SwitchyardOperator

struct OperatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "operator",
        abstract: "The Kubernetes operator: runs each Connector resource as a ConfigMap, Deployment, Service and PodDisruptionBudget.",
        discussion: "See docs/kubernetes.md. Without a subcommand it runs (operator run).",
        subcommands: [OperatorRun.self, OperatorRender.self],
        defaultSubcommand: OperatorRun.self)
}

struct OperatorRun: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Watch Connectors and reconcile them while holding the leader Lease, until SIGTERM.")

    @Option(help: "Manage the Connectors of this namespace only (default: every namespace).")
    var namespace: String?

    @Option(help: "A kubeconfig file, for running outside the cluster (default: the pod's service account).")
    var kubeconfig: String?

    @Option(help: "The kubeconfig context (default: its current-context).")
    var context: String?

    @Option(help: "HOST:PORT of the operator's /livez, /readyz and /metrics.")
    var metricsListen = "0.0.0.0:8080"

    @Option(help: "Name of the leader-election Lease.")
    var leaseName = "switchyard-operator"

    @Option(help: "Namespace of the Lease (default: $POD_NAMESPACE, else the service account's namespace, else switchyard-system).")
    var leaseNamespace: String?

    @Option(help: "Who holds the Lease (default: $POD_NAME, else the host name).")
    var identity: String?

    @Option(help: "Image of connector pods that do not set spec.deployment.image.")
    var image = "switchyard:\(Switchyard.version)"

    @Option(help: "Connectors reconciled at once.")
    var workers = 2

    @Option(help: "Log level (trace, debug, info, notice, warning, error, critical).")
    var logLevel = "info"

    func run() async throws {
        var options = OperatorOptions(image: image)
        options.namespace = namespace
        options.kubeconfig = kubeconfig
        options.context = context
        options.metricsListen = metricsListen
        options.leaseName = leaseName
        options.leaseNamespace = leaseNamespace
        options.identity = identity
        options.workers = max(1, workers)
        options.logLevel = logLevel
        let code = await OperatorApplication.run(options: options, registry: Families.registry(), environment: environment())
        if code != 0 { throw ExitCode(code) }
    }
}

struct OperatorRender: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "render",
        abstract: "Print the objects the operator writes for a Connector resource (YAML documents), after the same validation.")

    @Option(name: [.short, .customLong("file")], help: "A Connector resource (YAML).")
    var file: String

    @Option(help: "Image when spec.deployment.image is not set.")
    var image = "switchyard:\(Switchyard.version)"

    @Option(help: "Write one file per object (KIND-NAME.yaml) into this directory instead of printing.")
    var outputDirectory: String?

    @Flag(help: "Render for a cluster that serves KEDA (a ScaledObject instead of a HorizontalPodAutoscaler for spec.autoscaling).")
    var keda = false

    func run() throws {
        guard let data = FileManager.default.contents(atPath: file) else {
            printError("\(file): cannot read the file")
            throw ExitCode(2)
        }
        switch OperatorApplication.render(
            text: String(decoding: data, as: UTF8.self), registry: Families.registry(), image: image, kedaAvailable: keda)
        {
        case .failure(let failure):
            printError("\(file): not valid:")
            for message in failure.messages { printError("  \(message)") }
            throw ExitCode(1)
        case .success(let objects):
            if let outputDirectory {
                try FileManager.default.createDirectory(atPath: outputDirectory, withIntermediateDirectories: true)
                for object in objects {
                    let path = "\(outputDirectory)/\(object.kind.lowercased())-\(object.name).yaml"
                    try Data(object.yaml.utf8).write(to: URL(fileURLWithPath: path))
                }
            } else {
                print(objects.map { "---\n" + $0.yaml }.joined(), terminator: "")
            }
        }
    }
}
