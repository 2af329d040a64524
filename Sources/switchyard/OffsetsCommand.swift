#if Kafka
    import ArgumentParser
    import KafkaConnector
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
            abstract:
                "Translate a group's committed offsets from the bridge's source cluster to its target cluster, exactly, by the source positions on the bridged records.",
            discussion: """
                Prints, per target partition, the translated offset and the source position of the record there \
                (checked against the source), or why no exact offset exists. With --apply the offsets are committed for \
                the group on the target cluster (refused while the group has members there); nothing is committed when \
                any partition is refused. Exit status 1 on a refusal or an error.
                """)

        @OptionGroup var bridge: BridgeChoice

        @Option(help: "The consumer group to translate (its offsets on the source cluster).")
        var group: String

        @Flag(help: "Commit the translated offsets for the group on the target cluster.")
        var apply = false

        @Option(help: "text or json.")
        var output: OutputFormat = .text

        enum OutputFormat: String, ExpressibleByArgument {
            case text, json
        }

        func run() async throws {
            let (sourceEntry, targetEntry, cluster) = try bridge.load(purpose: "translated")
            let report: OffsetTranslationReport
            do {
                report = try await KafkaOffsetTranslator.translate(
                    source: sourceEntry, target: targetEntry, cluster: cluster, group: group, apply: apply)
            } catch let error as OffsetTranslationError {
                throw KafkaBridgeDocument.fail("offsets translate: \(error.message)")
            }
            print(output == .json ? Self.json(report).rendered() : Self.text(report), terminator: output == .json ? "\n" : "")
            if report.isRefused {
                printError(
                    "offsets translate: no exact translation for \(report.partitions.filter(\.isRefused).count) partition(s)\(apply ? "; nothing was committed" : ""):"
                )
                for partition in report.partitions {
                    if case .refused(let reason) = partition.verdict {
                        printError("  \(partition.topic)[\(partition.partition)]: \(reason)")
                    }
                }
                throw ExitCode(1)
            }
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
                lines.append(
                    "\(topic.sourceTopic) -> \(topic.targetTopic) (partition: \(topic.layout.rawValue), \(topic.sourcePartitions) -> \(topic.targetPartitions) partitions)"
                )
                var rows = [["partition", "source committed", "translated", "record there", "was", "verdict"]]
                for partition in topic.partitions {
                    rows.append([
                        String(partition.partition),
                        partition.sources.map { "\($0.partition):\($0.committed.map(String.init) ?? "-")" }.joined(separator: " "),
                        partition.offset.map(String.init) ?? "-",
                        partition.next.map { "\($0.partition):\($0.offset)" }
                            ?? (partition.verdict == .atEnd ? "(end \(partition.end))" : "-"),
                        partition.previouslyCommitted.map(String.init) ?? "-",
                        verdictText(partition.verdict),
                    ])
                }
                let widths = (0..<rows[0].count).map { column in rows.map { $0[column].count }.max()! }
                for row in rows {
                    lines.append(
                        row.enumerated().map { $0.element.padded(to: widths[$0.offset]) }.joined(separator: "  ").trimmingTrailingSpaces)
                }
            }
            lines.append("")
            let commits = report.commits.values.reduce(0) { $0 + $1.count }
            if report.applied {
                lines.append(
                    "applied: committed \(commits) offset\(commits == 1 ? "" : "s") for group \(report.group) on \(report.targetName)")
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
                "topics": .array(
                    report.topics.map { topic in
                        .object([
                            "sourceTopic": .string(topic.sourceTopic), "targetTopic": .string(topic.targetTopic),
                            "layout": .string(topic.layout.rawValue),
                            "sourcePartitions": .int(Int(topic.sourcePartitions)), "targetPartitions": .int(Int(topic.targetPartitions)),
                            "partitions": .array(
                                topic.partitions.map { partition -> JSONValue in
                                    var fields: [String: JSONValue] = [
                                        "partition": .int(Int(partition.partition)),
                                        "sources": .array(
                                            partition.sources.map {
                                                .object(["partition": .int(Int($0.partition)), "committed": number($0.committed)])
                                            }),
                                        "start": number(partition.start), "end": number(partition.end), "offset": number(partition.offset),
                                        "verdict": .string(verdictText(partition.verdict)),
                                        "previouslyCommitted": number(partition.previouslyCommitted),
                                        "reads": .int(partition.reads), "recordsRead": .int(partition.recordsRead),
                                        "next": partition.next.map {
                                            .object([
                                                "cluster": .string($0.cluster), "topic": .string($0.topic),
                                                "partition": .int(Int($0.partition)), "offset": .int(Int($0.offset)),
                                            ])
                                        } ?? .null,
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
