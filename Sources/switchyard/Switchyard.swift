#if canImport(Glibc)
    import Glibc
#endif
import ArgumentParser
import SwitchyardConfig
import SwitchyardCore
import SwitchyardRuntime
#if Builtin
    import BuiltinConnectors
#endif
#if Kafka
    import KafkaConnector
#endif
#if RabbitMQ
    import RabbitMQConnector
#endif
#if Redis
    import RedisConnector
#endif
#if Postgres
    import PostgresConnector
#endif
#if S3
    import S3Connector
#endif
#if Link
    import LinkConnector
#endif

/// The composition root: the only place that names connector families.
enum Families {
    static func registry() -> ConnectorRegistry {
        let registry = ConnectorRegistry()
        #if Builtin
            registry.register(BuiltinConnectors.family)
        #endif
        #if Kafka
            registry.register(KafkaConnectors.family)
        #endif
        #if RabbitMQ
            registry.register(RabbitMQConnectors.family)
        #endif
        #if Redis
            registry.register(RedisConnectors.family)
        #endif
        #if Postgres
            registry.register(PostgresConnectors.family)
        #endif
        #if S3
            registry.register(S3Connectors.family)
        #endif
        #if Link
            registry.register(LinkConnectors.family)
        #endif
        return registry
    }
}

func environment() -> [String: String] {
    var result: [String: String] = [:]
    var pointer = environ
    while let entry = pointer.pointee {
        let text = String(cString: entry)
        if let equals = text.firstIndex(of: "=") {
            result[String(text[..<equals])] = String(text[text.index(after: equals)...])
        }
        pointer += 1
    }
    return result
}

func printError(_ text: String) {
    var line = text
    if !line.hasSuffix("\n") { line += "\n" }
    let bytes = Array(line.utf8)
    bytes.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
}

@main
struct Switchyard: AsyncParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "switchyard",
        abstract: "A connector runtime: sources, targets and routes from one YAML document.",
        version: version,
        subcommands: [
            Run.self, Validate.self, Graph.self, Tap.self, Top.self, Connectors.self, Schema.self, CRD.self, OperatorCommand.self,
        ] + familyCommands
    )

    /// Commands that need a connector family compiled in.
    static var familyCommands: [any ParsableCommand.Type] {
        var commands: [any ParsableCommand.Type] = []
        #if Kafka
            commands.append(OffsetsCommand.self)
            commands.append(ReconcileCommand.self)
            commands.append(CutoverCommand.self)
        #endif
        return commands
    }
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the connector a document describes, until SIGTERM (or until a finite input is all acknowledged).")

    @Option(name: [.short, .customLong("config")], help: "The document: a Connector resource or its spec.")
    var config: String

    @Option(
        name: .customLong("stop-at"),
        help:
            "end: a bounded run. Each source notes where its input ends when it starts (Kafka: every partition's high watermark), takes nothing past it, and the process exits 0 once everything before it is written and acknowledged (docs/migration.md)."
    )
    var stopAt: StopPoint?

    enum StopPoint: String, ExpressibleByArgument {
        case end
    }

    func run() async throws {
        let code = await Application.run(
            configPath: config, registry: Families.registry(), environment: environment(), stopAtEnd: stopAt == .end)
        if code != 0 { throw ExitCode(code) }
    }
}

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check documents; print every problem with its path and line. Exit 0 when all are valid.")

    @Argument(help: "Documents to check.")
    var files: [String]

    func run() throws {
        let loader = DocumentLoader(registry: Families.registry(), interpolator: Interpolator(environment: environment()))
        var failed = false
        for file in files {
            let text: String
            switch Interpolator.readDocument(file) {
            case .success(let read): text = read
            case .failure(let failure):
                printError("\(file): \(failure)")
                failed = true
                continue
            }
            switch loader.load(text) {
            case .success(let document):
                print(
                    "\(file): valid (\(document.sources.count) sources, \(document.targets.count) targets, \(document.routes.count) routes)"
                )
            case .failure(let errors):
                failed = true
                printError("\(file): \(errors.count) problem\(errors.count == 1 ? "" : "s")")
                for issue in errors.issues {
                    printError("  \(file):\(issue.line.map(String.init) ?? "-"): \(issue.path): \(issue.message)")
                }
                if let more = errors.omittedLine { printError("  \(file): \(more)") }
            }
        }
        if failed { throw ExitCode(1) }
    }
}

struct Graph: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Print a document's pipeline (sources, routes, targets, dead letters) as Graphviz DOT or Mermaid, from the document alone.")

    @Option(name: [.short, .customLong("config")], help: "The document.")
    var config: String

    @Option(help: "dot (Graphviz: `| dot -Tsvg > pipeline.svg`) or mermaid.")
    var format = "dot"

    func run() throws {
        guard format == "dot" || format == "mermaid" else {
            printError("--format: expected dot or mermaid, got '\(format)'")
            throw ExitCode(2)
        }
        guard let text = Interpolator.readFileContents(config) else {
            printError("\(config): cannot read the file")
            throw ExitCode(2)
        }
        let loader = DocumentLoader(registry: Families.registry(), interpolator: Interpolator(environment: environment()))
        switch loader.load(text) {
        case .success(let document):
            let graph = PipelineGraph(document)
            print(format == "dot" ? graph.dot : graph.mermaid, terminator: "")
        case .failure(let errors):
            printError("\(config): \(errors.issues.count) problem\(errors.issues.count == 1 ? "" : "s")")
            for issue in errors.issues { printError("  \(config):\(issue.line.map(String.init) ?? "-"): \(issue.path): \(issue.message)") }
            throw ExitCode(2)
        }
    }
}

struct Connectors: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the connector families compiled into this binary and their options.")

    @Flag(help: "Print as JSON.")
    var json = false

    func run() throws {
        let catalog = ConnectorCatalog(registry: Families.registry())
        print(json ? catalog.json().rendered() : catalog.text())
    }
}

struct Schema: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the JSON Schema of documents, generated from the same model as the validator.")

    func run() throws {
        print(JSONSchemaGenerator(registry: Families.registry()).document().rendered())
    }
}

struct CRD: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crd",
        abstract: "Print the Connector CustomResourceDefinition (YAML), generated from the same model as the validator.",
        discussion:
            "Its schema covers the connector families compiled into this binary; deploy/crd.yaml is the output of a build with the default traits."
    )

    func run() throws {
        print(CRDGenerator(registry: Families.registry()).yaml(), terminator: "")
    }
}
