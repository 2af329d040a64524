#if Kafka
import ArgumentParser
import KafkaConnector
import Logging
import SwitchyardConfig
import SwitchyardCore

struct OffsetsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "offsets",
        abstract: "Consumer-group offsets across a Kafka-to-Kafka bridge (docs/migration.md).",
        subcommands: [OffsetsTranslate.self])
}

struct OffsetsTranslate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "translate",
        abstract: "Translate a group's committed offsets from the bridge's source cluster to its target cluster, exactly, by the source positions on the bridged records.",
        discussion: """
            Prints, per target partition, the translated offset and the source position of the record there \
            (checked against the source), or why no exact offset exists. With --apply the offsets are committed for \
            the group on the target cluster (refused while the group has members there); nothing is committed when \
            any partition is refused. Exit status 1 on a refusal or an error.
            """)

    @Option(name: [.short, .customLong("config")], help: "The bridge's document (a kafka source routed to a kafka target).")
    var config: String

    @Option(help: "The consumer group to translate (its offsets on the source cluster).")
    var group: String

    @Flag(help: "Commit the translated offsets for the group on the target cluster.")
    var apply = false

    @Option(help: "text or json.")
    var output: OutputFormat = .text

    @Option(help: "The kafka source to use, when the document has several.")
    var source: String?

    @Option(help: "The kafka target to use, when the source is routed to several.")
    var target: String?

    enum OutputFormat: String, ExpressibleByArgument {
        case text, json
    }

    func run() async throws {
        let loader = DocumentLoader(registry: Families.registry(), interpolator: Interpolator(environment: environment()))
        guard let text = Interpolator.readFileContents(config) else { throw fail("\(config): cannot read the file") }
        let document: ConnectorDocument
        switch loader.load(text) {
        case .success(let loaded): document = loaded
        case .failure(let errors):
            throw fail("\(config): not a valid document:\n" + errors.issues.map { "  \($0.line.map(String.init) ?? "-"): \($0.path): \($0.message)" }.joined(separator: "\n"))
        }
        let (sourceEntry, targetEntry) = try pair(in: document)
        guard let provenance = document.provenance(for: sourceEntry), let cluster = provenance.cluster else {
            throw fail("\(sourceEntry.path): source '\(sourceEntry.name)' names no cluster (set \(sourceEntry.path).cluster or spec.provenance.cluster), so the bridge stamps no source positions and its records cannot be translated")
        }
        guard provenance.stampsPosition else {
            throw fail("spec.provenance.positionHeaders is false, so the bridge stamps no source positions and its records cannot be translated")
        }
        var logger = Logger(label: "switchyard.offsets") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = .error
        let report: OffsetTranslationReport
        do {
            report = try await KafkaOffsetTranslator.translate(source: sourceEntry, target: targetEntry, cluster: cluster, group: group, apply: apply, logger: logger)
        } catch let error as OffsetTranslationError {
            throw fail("offsets translate: \(error.message)")
        }
        print(output == .json ? Self.json(report).rendered() : Self.text(report), terminator: output == .json ? "\n" : "")
        if report.isRefused {
            printError("offsets translate: no exact translation for \(report.partitions.filter(\.isRefused).count) partition(s)\(apply ? "; nothing was committed" : ""):")
            for partition in report.partitions {
                if case .refused(let reason) = partition.verdict { printError("  \(partition.topic)[\(partition.partition)]: \(reason)") }
            }
            throw ExitCode(1)
        }
    }

    /// The kafka source and kafka target to translate between.
    func pair(in document: ConnectorDocument) throws -> (ConnectorEntry, ConnectorEntry) {
        var pairs: [(ConnectorEntry, ConnectorEntry)] = []
        for route in document.routes {
            for from in route.from {
                guard let entry = document.sources.first(where: { $0.name == from }), entry.kind == "kafka" else { continue }
                for to in route.to {
                    guard let targetEntry = document.targets.first(where: { $0.name == to }), targetEntry.kind == "kafka" else { continue }
                    if !pairs.contains(where: { $0.0.name == entry.name && $0.1.name == targetEntry.name }) { pairs.append((entry, targetEntry)) }
                }
            }
        }
        if pairs.isEmpty {
            let kafkaSources = document.sources.filter { $0.kind == "kafka" }.map(\.name)
            throw fail("\(config): no route from a kafka source to a kafka target"
                + (kafkaSources.isEmpty ? " (the document has no kafka source)" : " (kafka sources: \(kafkaSources.joined(separator: ", ")))")
                + "; offset translation is for Kafka-to-Kafka bridges")
        }
        let chosen = pairs.filter { (source == nil || $0.0.name == source) && (target == nil || $0.1.name == target) }
        if chosen.count == 1 { return chosen[0] }
        let listed = pairs.map { "--source \($0.0.name) --target \($0.1.name)" }.joined(separator: ", ")
        if chosen.isEmpty { throw fail("\(config): no kafka-to-kafka route matches the chosen source and target (routes: \(listed))") }
        throw fail("\(config): several kafka-to-kafka routes; choose one with \(listed)")
    }

    func fail(_ message: String) -> ExitCode {
        printError(message)
        return ExitCode(1)
    }

    static func verdictText(_ verdict: PartitionTranslation.Verdict) -> String {
        switch verdict {
        case .exact: return "exact"
        case .atEnd: return "at-end"
        case .noCommit: return "no-commit"
        case .refused: return "refused"
        }
    }

    static func text(_ report: OffsetTranslationReport) -> String {
        var lines = ["group \(report.group): source \(report.sourceName) (cluster \(report.cluster)) -> target \(report.targetName)"]
        for topic in report.topics {
            lines.append("")
            lines.append("\(topic.sourceTopic) -> \(topic.targetTopic) (partition: \(topic.layout.rawValue), \(topic.sourcePartitions) -> \(topic.targetPartitions) partitions)")
            var rows = [["partition", "source committed", "translated", "record there", "was", "verdict"]]
            for partition in topic.partitions {
                rows.append([
                    String(partition.partition),
                    partition.sources.map { "\($0.partition):\($0.committed.map(String.init) ?? "-")" }.joined(separator: " "),
                    partition.offset.map(String.init) ?? "-",
                    partition.next.map { "\($0.partition):\($0.offset)" } ?? (partition.verdict == .atEnd ? "(end \(partition.end))" : "-"),
                    partition.previouslyCommitted.map(String.init) ?? "-",
                    verdictText(partition.verdict),
                ])
            }
            let widths = (0..<rows[0].count).map { column in rows.map { $0[column].count }.max()! }
            for row in rows {
                lines.append(row.enumerated().map { $0.element.padded(to: widths[$0.offset]) }.joined(separator: "  ").trimmingTrailingSpaces)
            }
        }
        lines.append("")
        let commits = report.commits.values.reduce(0) { $0 + $1.count }
        if report.applied {
            lines.append("applied: committed \(commits) offset\(commits == 1 ? "" : "s") for group \(report.group) on \(report.targetName)")
        } else if report.isRefused {
            lines.append("refused: no exact translation for every partition; nothing committed")
        } else {
            lines.append("not applied (dry run): --apply commits these \(commits) offset\(commits == 1 ? "" : "s")")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func json(_ report: OffsetTranslationReport) -> JSONValue {
        func number(_ value: Int64?) -> JSONValue { value.map { .int(Int($0)) } ?? .null }
        return .object([
            "group": .string(report.group), "source": .string(report.sourceName), "target": .string(report.targetName),
            "cluster": .string(report.cluster), "applied": .bool(report.applied), "refused": .bool(report.isRefused),
            "topics": .array(report.topics.map { topic in
                .object([
                    "sourceTopic": .string(topic.sourceTopic), "targetTopic": .string(topic.targetTopic), "layout": .string(topic.layout.rawValue),
                    "sourcePartitions": .int(Int(topic.sourcePartitions)), "targetPartitions": .int(Int(topic.targetPartitions)),
                    "partitions": .array(topic.partitions.map { partition in
                        var fields: [String: JSONValue] = [
                            "partition": .int(Int(partition.partition)),
                            "sources": .array(partition.sources.map { .object(["partition": .int(Int($0.partition)), "committed": number($0.committed)]) }),
                            "start": number(partition.start), "end": number(partition.end), "offset": number(partition.offset),
                            "verdict": .string(verdictText(partition.verdict)), "previouslyCommitted": number(partition.previouslyCommitted),
                            "reads": .int(partition.reads), "recordsRead": .int(partition.recordsRead),
                            "next": partition.next.map { .object(["cluster": .string($0.cluster), "topic": .string($0.topic), "partition": .int(Int($0.partition)), "offset": .int(Int($0.offset))]) } ?? .null,
                        ]
                        if case .refused(let reason) = partition.verdict { fields["reason"] = .string(reason) }
                        return .object(fields)
                    }),
                ])
            }),
        ])
    }
}

extension String {
    fileprivate func padded(to length: Int) -> String {
        count >= length ? self : self + String(repeating: " ", count: length - count)
    }

    fileprivate var trimmingTrailingSpaces: String {
        var text = self
        while text.last == " " { text.removeLast() }
        return text
    }
}
#endif
