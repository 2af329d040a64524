#if Kafka
    import ArgumentParser
    import Foundation
    import KafkaConnector
    import SwitchyardConfig
    import SwitchyardCore
    import SwitchyardRuntime

    struct CutoverCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "cutover",
            abstract:
                "Finish a migration: copy up to the source's end, move the consumer groups' offsets, and prove the copy (docs/migration.md).",
            discussion: """
                Refuses to start while the bridge's own group or a listed group has members on the source cluster. \
                Notes each source partition's end, runs the bridge until everything before it is written and \
                acknowledged (as `switchyard run --stop-at end`), translates and commits each listed group's offsets \
                on the target cluster, and reconciles both sides over the copied range. Prints the report (and writes \
                it as JSON with --report). Exit status 0 when every step succeeded, 1 otherwise (the report says which \
                step failed and why). For a RabbitMQ source: refuses while the queue has consumers, drains it with a bounded \
                run (until it stayed empty for the source's quietPeriod) and checks that it is empty; no groups move and \
                nothing is reconciled (a consumed queue keeps nothing to compare).
                """)

        @OptionGroup var bridge: BridgeChoice

        @Option(name: .customLong("group"), help: "A consumer group to move to the target cluster (repeat for several).")
        var groups: [String] = []

        @Option(help: "text or json.")
        var output: OffsetsTranslate.OutputFormat = .text

        @Option(help: "Also write the report as JSON to this file.")
        var report: String?

        @Option(help: "How many records of each kind of difference the reconciliation names.")
        var show = 5

        @Option(name: .customLong("header"), help: "A header the reconciliation compares besides key and value (repeat for several).")
        var headers: [String] = []

        func run() async throws {
            #if RabbitMQ
                if let (source, target) = try RabbitMQCutover.route(config: bridge.config, source: bridge.source, target: bridge.target) {
                    return try await RabbitMQCutover.run(self, source: source, target: target)
                }
            #endif
            let (sourceEntry, targetEntry, cluster) = try bridge.load(purpose: "cut over")
            let bridgeGroup = sourceEntry.options.string("group") ?? sourceEntry.name
            if let repeated = groups.first(where: { $0 == bridgeGroup }) {
                throw KafkaBridgeDocument.fail(
                    "cutover: '\(repeated)' is the bridge's own group (\(sourceEntry.path).kafka.group); list the groups of the applications that move"
                )
            }
            var result = CutoverReport(
                source: sourceEntry.name, target: targetEntry.name, cluster: cluster, bridgeGroup: bridgeGroup, groups: groups)
            do {
                result.unchecked = try await Self.preflight(
                    sourceEntry, targetEntry, cluster: cluster, bridgeGroup: bridgeGroup, groups: groups)
                for warning in result.unchecked { printError("cutover: warning: \(warning)") }
            } catch let error as OffsetTranslationError {
                throw KafkaBridgeDocument.fail("cutover: \(error.message). Nothing was done")
            }
            await Self.carryOut(&result, config: bridge.config, sourceEntry, targetEntry, show: show, headers: headers)
            let json = result.json.rendered()
            if let report {
                do { try Data((json + "\n").utf8).write(to: URL(fileURLWithPath: report)) } catch {
                    printError("cutover: cannot write the report to \(report): \(error)")
                    throw ExitCode(1)
                }
            }
            print(output == .json ? json : result.text, terminator: output == .json ? "\n" : "")
            if !result.isComplete { throw ExitCode(1) }
        }

        /// Refuses a cutover that cannot be exact: the bridge still running (its group has
        /// members), a listed group still consuming on the source, or one that never committed.
        /// Returns the checks it could not make (a cluster that does not list groups).
        static func preflight(
            _ sourceEntry: ConnectorEntry, _ targetEntry: ConnectorEntry, cluster: String, bridgeGroup: String, groups: [String]
        ) async throws -> [String] {
            if groups.isEmpty { throw OffsetTranslationError("name the consumer groups that move with --group") }
            var unchecked: [String] = []
            /// Why `group` counts as running on the source cluster, or nil when it does not.
            func running(_ group: String) async throws -> String? {
                guard let state = try await KafkaCutoverChecks.groupOnSource(source: sourceEntry, cluster: cluster, group: group) else {
                    unchecked.append(
                        "group '\(group)' on cluster \(cluster): the cluster does not describe groups, so that it has no members was not checked"
                    )
                    return nil
                }
                guard state.isActive else { return nil }
                return state.members > 0
                    ? "has \(state.members) member\(state.members == 1 ? "" : "s")" : "is \(state.state) (a live generation)"
            }
            if let why = try await running(bridgeGroup) {
                throw OffsetTranslationError(
                    "the bridge's group '\(bridgeGroup)' \(why) on cluster \(cluster): a bridge is still running; stop it (scale its Connector to 0, or stop the process) so that the cutover copies alone"
                )
            }
            for group in groups {
                let committed = try await KafkaCutoverChecks.committedOnSource(
                    source: sourceEntry, target: targetEntry, cluster: cluster, group: group)
                if committed.values.allSatisfy(\.isEmpty) {
                    throw OffsetTranslationError(
                        "group '\(group)' has no committed offsets on cluster \(cluster) for the bridge's topics: an unknown group, or one that never committed"
                    )
                }
                if let why = try await running(group) {
                    throw OffsetTranslationError(
                        "group '\(group)' \(why) on cluster \(cluster): stop its consumers there first, so that its committed offsets are final"
                    )
                }
            }
            return unchecked
        }

        /// The steps after the preflight; each failure ends the cutover with its reason.
        static func carryOut(
            _ result: inout CutoverReport, config: String, _ sourceEntry: ConnectorEntry, _ targetEntry: ConnectorEntry, show: Int,
            headers: [String]
        ) async {
            let cluster = result.cluster
            do {
                result.ranges = try await KafkaCutoverChecks.sourceRanges(source: sourceEntry, target: targetEntry, cluster: cluster)
            } catch {
                result.failure = ("capture", "\(error)")
                return
            }
            let status = await Application.run(
                configPath: config, registry: Families.registry(), environment: environment(), stopAtEnd: true)
            guard status == 0 else {
                result.failure = ("copy", "the bounded copy exited with status \(status) (its log is above)")
                return
            }
            do {
                let committed = try await KafkaCutoverChecks.committedOnSource(
                    source: sourceEntry, target: targetEntry, cluster: cluster, group: result.bridgeGroup)
                result.copiedThrough = committed
                var short: [String] = []
                for (topic, partitions) in result.ranges {
                    for (partition, range) in partitions {
                        let through = committed[topic]?[partition] ?? range.start
                        if through < range.end { short.append("\(topic)[\(partition)] at \(through) of \(range.end)") }
                    }
                }
                if !short.isEmpty {
                    result.failure = (
                        "copy",
                        "the bridge's group did not commit up to the end noted at the start: \(short.sorted().joined(separator: ", "))"
                    )
                    return
                }
            } catch {
                result.failure = ("copy", "\(error)")
                return
            }
            for group in result.groups {
                do {
                    let translation = try await KafkaOffsetTranslator.translate(
                        source: sourceEntry, target: targetEntry, cluster: cluster, group: group, apply: true)
                    result.translations.append(translation)
                    if !translation.applied {
                        let refused = translation.partitions.filter(\.isRefused).map { "\($0.topic)[\($0.partition)]" }
                        result.failure = (
                            "translate",
                            "group '\(group)': no exact translation for \(refused.joined(separator: ", ")); nothing was committed for it"
                        )
                        return
                    }
                } catch {
                    result.failure = ("translate", "group '\(group)': \(error)")
                    return
                }
            }
            // The copied range: up to the bridge's committed offsets (the stops), so records that
            // reached the source after the copy began are not counted as missing.
            var until: KafkaCutoverChecks.Offsets = [:]
            for (topic, partitions) in result.ranges {
                for (partition, range) in partitions {
                    until[topic, default: [:]][partition] = result.copiedThrough[topic]?[partition] ?? range.end
                }
            }
            do {
                let reconciliation = try await KafkaReconciler.reconcile(
                    source: sourceEntry, target: targetEntry, cluster: cluster, show: show, until: until, headers: headers)
                result.reconciliation = reconciliation
                if !reconciliation.isEqual {
                    result.failure = ("reconcile", "the target does not hold the same records as the source over the copied range")
                }
            } catch {
                result.failure = ("reconcile", "\(error)")
            }
        }
    }
#endif
