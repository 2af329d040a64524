#if Kafka
    import ArgumentParser
    import KafkaConnector
    #if S3
        import S3Connector
    #endif
    import SwitchyardConfig
    import SwitchyardCore

    struct ReconcileCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "reconcile",
            abstract: "Compare what a Kafka source holds with what its Kafka, S3, PostgreSQL or Redis target holds (docs/migration.md).",
            discussion: """
                Per source partition, over the records present when it starts: the count and an order-independent \
                digest of key, value and the --header headers on both sides (target records are matched by their source position headers), \
                and for a partition that differs, the missing, differing and duplicated records by source offset. \
                Target records without a source position are extra. An s3 target is read back from its NDJSON lines \
                (each names its source partition and offset) under the prefix its key template starts with, or --prefix. \
                A postgres target (mode: upsert) is compared row by row by its conflictColumns: the records rendered with its \
                column templates against the table, in SQL on the same server. A redis target (set, or hset with a constant field) \
                is compared key by key: values read back with GET or HGET, extra keys listed with SCAN under the key template's prefix. \
                Exit status 0 when both sides hold the same \
                records, 1 on a difference or an error.
                """)

        @OptionGroup var bridge: BridgeChoice

        @Option(help: "text or json.")
        var output: OffsetsTranslate.OutputFormat = .text

        @Option(help: "How many records of each kind of difference to name.")
        var show = 5

        @Option(
            name: .customLong("header"),
            help: "A header whose value is compared besides key and value (repeat for several; the last value of a header counts).")
        var headers: [String] = []

        @Option(help: "s3 target: the key prefix to read (default: where the target's key template puts each topic's objects).")
        var prefix: String?

        /// The kinds of target this build reconciles.
        static var targetKinds: [String] {
            var kinds = ["kafka"]
            #if S3
                kinds.append("s3")
            #endif
            #if Postgres
                kinds.append("postgres")
            #endif
            #if Redis
                kinds.append("redis")
            #endif
            return kinds
        }

        /// Prints a keyed report (PostgreSQL rows, Redis keys); exit status 1 on a difference.
        func printKeyed(_ report: KeyedReconciliationReport, source: ConnectorEntry, target: ConnectorEntry) throws {
            if output == .json {
                print(Self.json(report, source: source.name, target: target.name).rendered())
            } else {
                print(Self.text(report, source: source.name, target: target.name), terminator: "")
            }
            if !report.isEqual { throw ExitCode(1) }
        }

        func run() async throws {
            let (sourceEntry, targetEntry, cluster) = try bridge.load(purpose: "reconciled", targetKinds: Self.targetKinds)
            #if Postgres
                if targetEntry.kind == "postgres" {
                    return try await runPostgres(source: sourceEntry, target: targetEntry, cluster: cluster)
                }
            #endif
            #if Redis
                if targetEntry.kind == "redis" { return try await runRedis(source: sourceEntry, target: targetEntry, cluster: cluster) }
            #endif
            let report: ReconciliationReport
            do {
                if targetEntry.kind == "kafka" {
                    report = try await KafkaReconciler.reconcile(
                        source: sourceEntry, target: targetEntry, cluster: cluster, show: show, headers: headers)
                } else {
                    report = try await reconcileS3(source: sourceEntry, target: targetEntry, cluster: cluster)
                }
            } catch let error as OffsetTranslationError {
                throw KafkaBridgeDocument.fail("reconcile: \(error.message)")
            }
            if output == .json {
                print(Self.json(report).rendered())
            } else {
                print(Self.text(report), terminator: "")
            }
            if !report.isEqual { throw ExitCode(1) }
        }

        static func text(_ report: ReconciliationReport) -> String {
            var lines = ["source \(report.sourceName) (cluster \(report.cluster)) -> target \(report.targetName)"]
            for topic in report.topics {
                lines.append("")
                lines.append(
                    "\(topic.sourceTopic) -> \(topic.targetTopic): \(topic.sourceRecords) source records, \(topic.targetRecords) target records read"
                )
                for partition in topic.partitions {
                    var line =
                        "  partition \(partition.partition) [\(partition.start), \(partition.end)): source \(partition.source.count), target \(partition.target.count): "
                    if partition.isEqual {
                        line += "equal (digest \(String(partition.source.sum, radix: 16)))"
                    } else {
                        var parts: [String] = []
                        if partition.missingCount > 0 {
                            parts.append(
                                "\(partition.missingCount) missing (source offsets \(list(partition.missing, partition.missingCount)))")
                        }
                        if partition.differingCount > 0 {
                            parts.append("\(partition.differingCount) differing (\(list(partition.differing, partition.differingCount)))")
                        }
                        if partition.duplicatedCount > 0 {
                            parts.append(
                                "\(partition.duplicatedCount) duplicated (\(list(partition.duplicated, partition.duplicatedCount)))")
                        }
                        if partition.unknownCount > 0 {
                            parts.append(
                                "\(partition.unknownCount) naming offsets the source lacks (\(list(partition.unknown, partition.unknownCount)))"
                            )
                        }
                        line += "DIFFERENT: " + (parts.isEmpty ? "digests differ" : parts.joined(separator: "; "))
                    }
                    lines.append(line)
                }
                if topic.extraCount > 0 {
                    let named =
                        topic.extraPlaces.isEmpty
                        ? topic.extra.map { "\($0.partition)@\($0.offset)" }.joined(separator: ", ")
                        : topic.extraPlaces.joined(separator: "; ")
                    lines.append(
                        "  extra: \(topic.extraCount) target record\(topic.extraCount == 1 ? "" : "s") without a source position (\(named)\(topic.extraCount > topic.extra.count ? ", ..." : ""))"
                    )
                }
                if topic.otherSources > 0 {
                    lines.append("  \(topic.otherSources) target records from other clusters or topics (not compared)")
                }
                if topic.later > 0 { lines.append("  \(topic.later) target records copied after the compared range (not compared)") }
            }
            lines.append("")
            lines.append(report.isEqual ? "equal" : "DIFFERENT")
            return lines.joined(separator: "\n") + "\n"
        }

        #if S3

            /// A Kafka source against the NDJSON objects of an `s3` target.
            func reconcileS3(source: ConnectorEntry, target: ConnectorEntry, cluster: String) async throws -> ReconciliationReport {
                guard target.options.string("format") ?? "ndjson" == "ndjson" else {
                    throw OffsetTranslationError(
                        "\(target.path).s3.format: raw objects hold no source positions; reconciliation reads format: ndjson")
                }
                let reader: S3BucketReader
                do { reader = try S3BucketReader(target: target.options) } catch {
                    throw OffsetTranslationError("target '\(target.name)': \(error.message)")
                }
                let prefix = self.prefix
                let extras = S3LineScanner.ExtraPlaces(show: show)
                let headers = self.headers
                let location = { @Sendable (topic: String) in "s3://\(reader.bucket)/\(prefix ?? reader.prefix(channel: topic))" }
                var report = try await KafkaReconciler.reconcile(
                    source: source, cluster: cluster, targetName: target.name, show: show, headers: headers, describe: location,
                    target: { topic in
                        S3LineScanner(
                            reader: reader, prefix: prefix ?? reader.prefix(channel: topic), topic: topic, headers: headers, extras: extras)
                    })
                let places = extras.places.withLock { $0 }
                for index in report.topics.indices where report.topics[index].extraCount > 0 { report.topics[index].extraPlaces = places }
                return report
            }
        #else

            func reconcileS3(source: ConnectorEntry, target: ConnectorEntry, cluster: String) async throws -> ReconciliationReport {
                throw OffsetTranslationError("this build has no s3 connector")
            }
        #endif

        static func list(_ offsets: [Int64], _ count: Int) -> String {
            offsets.map(String.init).joined(separator: ", ") + (count > offsets.count ? ", ..." : "")
        }

        static func json(_ report: ReconciliationReport) -> JSONValue {
            func offsets(_ values: [Int64]) -> JSONValue { .array(values.map { .int(Int($0)) }) }
            return .object([
                "source": .string(report.sourceName), "target": .string(report.targetName), "cluster": .string(report.cluster),
                "equal": .bool(report.isEqual), "seconds": .number(report.seconds),
                "topics": .array(
                    report.topics.map { topic -> JSONValue in
                        .object([
                            "sourceTopic": .string(topic.sourceTopic), "targetTopic": .string(topic.targetTopic),
                            "equal": .bool(topic.isEqual),
                            "sourceRecords": .int(topic.sourceRecords), "targetRecords": .int(topic.targetRecords),
                            "extraCount": .int(topic.extraCount),
                            "extra": topic.extraPlaces.isEmpty
                                ? .array(
                                    topic.extra.map { .object(["partition": .int(Int($0.partition)), "offset": .int(Int($0.offset))]) })
                                : .array(topic.extraPlaces.map { .object(["place": .string($0)]) }),
                            "otherSources": .int(topic.otherSources), "later": .int(topic.later),
                            "partitions": .array(
                                topic.partitions.map { partition -> JSONValue in
                                    .object([
                                        "partition": .int(Int(partition.partition)), "start": .int(Int(partition.start)),
                                        "end": .int(Int(partition.end)),
                                        "equal": .bool(partition.isEqual),
                                        "sourceCount": .int(partition.source.count), "targetCount": .int(partition.target.count),
                                        "sourceDigest": .string(String(partition.source.sum, radix: 16)),
                                        "targetDigest": .string(String(partition.target.sum, radix: 16)),
                                        "missingCount": .int(partition.missingCount), "missing": offsets(partition.missing),
                                        "differingCount": .int(partition.differingCount), "differing": offsets(partition.differing),
                                        "duplicatedCount": .int(partition.duplicatedCount), "duplicated": offsets(partition.duplicated),
                                        "unknownCount": .int(partition.unknownCount), "unknown": offsets(partition.unknown),
                                    ])
                                }),
                        ])
                    }),
            ])
        }
    }
#endif
