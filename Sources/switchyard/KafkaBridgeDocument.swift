#if Kafka
    import ArgumentParser
    import SwitchyardConfig
    import SwitchyardCore

    /// The options that choose a migration command's bridge: its document, and which source and
    /// target when it has several.
    struct BridgeChoice: ParsableArguments {
        @Option(name: [.short, .customLong("config")], help: "The bridge's document (a kafka source routed to a kafka target).")
        var config: String

        @Option(help: "The kafka source to use, when the document has several.")
        var source: String?

        @Option(help: "The kafka target to use, when the source is routed to several.")
        var target: String?

        /// The chosen source and target entries and the source's cluster name.
        func load(purpose: String, targetKinds: [String] = ["kafka"]) throws -> (ConnectorEntry, ConnectorEntry, String) {
            try KafkaBridgeDocument.load(config, source: source, target: target, purpose: purpose, targetKinds: targetKinds)
        }
    }

    /// The Kafka-to-Kafka bridge a migration command works on: a `kafka` source routed to a
    /// `kafka` target in a document, and the source's cluster name.
    enum KafkaBridgeDocument {
        /// Loads `config` and picks the source and target (`source`/`target` choose when there are
        /// several); `purpose` completes the sentence "its records cannot be ...".
        /// `targetKinds`: the kinds of target the command reads. Only a `kafka` target needs the
        /// source positions stamped in headers (an `s3` target's NDJSON lines hold them); for
        /// another the returned cluster name is the source's own name when the document names none.
        static func load(_ config: String, source: String?, target: String?, purpose: String, targetKinds: [String] = ["kafka"]) throws -> (
            ConnectorEntry, ConnectorEntry, String
        ) {
            let loader = DocumentLoader(registry: Families.registry(), interpolator: Interpolator(environment: environment()))
            guard let text = Interpolator.readFileContents(config) else { throw fail("\(config): cannot read the file") }
            let document: ConnectorDocument
            switch loader.load(text) {
            case .success(let loaded): document = loaded
            case .failure(let errors):
                throw fail(
                    "\(config): not a valid document:\n"
                        + errors.issues.map { "  \($0.line.map(String.init) ?? "-"): \($0.path): \($0.message)" }.joined(separator: "\n"))
            }
            let (sourceEntry, targetEntry) = try pair(
                in: document, config: config, source: source, target: target, targetKinds: targetKinds)
            if targetEntry.kind != "kafka" {
                return (sourceEntry, targetEntry, document.provenance(for: sourceEntry)?.cluster ?? sourceEntry.name)
            }
            guard let provenance = document.provenance(for: sourceEntry), let cluster = provenance.cluster else {
                throw fail(
                    "\(sourceEntry.path): source '\(sourceEntry.name)' names no cluster (set \(sourceEntry.path).cluster or spec.provenance.cluster), so the bridge stamps no source positions and its records cannot be \(purpose)"
                )
            }
            guard provenance.stampsPosition else {
                throw fail(
                    "spec.provenance.positionHeaders is false, so the bridge stamps no source positions and its records cannot be \(purpose)"
                )
            }
            return (sourceEntry, targetEntry, cluster)
        }

        static func pair(
            in document: ConnectorDocument, config: String, source: String?, target: String?, targetKinds: [String] = ["kafka"]
        ) throws -> (ConnectorEntry, ConnectorEntry) {
            let kinds = targetKinds.joined(separator: " or ")
            var pairs: [(ConnectorEntry, ConnectorEntry)] = []
            for route in document.routes {
                for from in route.from {
                    guard let entry = document.sources.first(where: { $0.name == from }), entry.kind == "kafka" else { continue }
                    for to in route.to {
                        guard let targetEntry = document.targets.first(where: { $0.name == to }), targetKinds.contains(targetEntry.kind)
                        else { continue }
                        if !pairs.contains(where: { $0.0.name == entry.name && $0.1.name == targetEntry.name }) {
                            pairs.append((entry, targetEntry))
                        }
                    }
                }
            }
            if pairs.isEmpty {
                let kafkaSources = document.sources.filter { $0.kind == "kafka" }.map(\.name)
                throw fail(
                    "\(config): no route from a kafka source to a \(kinds) target"
                        + (kafkaSources.isEmpty
                            ? " (the document has no kafka source)" : " (kafka sources: \(kafkaSources.joined(separator: ", ")))")
                        + "; this command is for routes from Kafka to \(kinds)")
            }
            let chosen = pairs.filter { (source == nil || $0.0.name == source) && (target == nil || $0.1.name == target) }
            if chosen.count == 1 { return chosen[0] }
            let listed = pairs.map { "--source \($0.0.name) --target \($0.1.name)" }.joined(separator: ", ")
            if chosen.isEmpty {
                throw fail("\(config): no route from kafka to \(kinds) matches the chosen source and target (routes: \(listed))")
            }
            throw fail("\(config): several routes from kafka to \(kinds); choose one with \(listed)")
        }

        /// Prints `message` to standard error and returns exit status 1 to throw.
        static func fail(_ message: String) -> ExitCode {
            printError(message)
            return ExitCode(1)
        }
    }
#endif
