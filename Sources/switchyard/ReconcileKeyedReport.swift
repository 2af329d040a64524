#if Kafka
    import ArgumentParser
    import KafkaConnector
    import SwitchyardConfig
    import SwitchyardCore

    /// A keyed reconciliation (PostgreSQL rows, Redis keys): how it runs, and its text and JSON.
    extension ReconcileCommand {
        /// Runs `work` on a thread of its own with a reader of the Kafka source and the source's
        /// ranges (taken first, so that they describe one moment as closely as the cluster allows),
        /// prints the report and exits 1 on a difference; errors end the command naming what failed.
        func runKeyed(
            source: ConnectorEntry, target: ConnectorEntry, cluster: String,
            _ work: @escaping @Sendable (KafkaSourceReader, KafkaSourceReader.Ranges) throws -> KeyedReconciliationReport
        ) async throws {
            let report: KeyedReconciliationReport
            do {
                report = try await BlockingQueue(label: "switchyard.reconcile").run {
                    let reader = try KafkaSourceReader(source: source, cluster: cluster)
                    return try work(reader, try reader.ranges())
                }
            } catch let error as KafkaError {
                throw KafkaBridgeDocument.fail("reconcile: reading source '\(source.name)' on cluster \(cluster): \(error)")
            } catch {
                throw KafkaBridgeDocument.fail("reconcile: \(error)")
            }
            try printKeyed(report, source: source, target: target)
        }

        static func text(_ report: KeyedReconciliationReport, source: String, target: String) -> String {
            func list(_ positions: [KeyedReconciliationReport.Position], _ count: Int) -> String {
                positions.map { "\($0.channel)[\($0.partition)]@\($0.offset)" }.joined(separator: ", ")
                    + (count > positions.count ? ", ..." : "")
            }
            let held = report.held.map { "; the target holds \($0)" } ?? ""
            var lines = [
                "source \(source) -> target \(target) (\(report.target))",
                "",
                "\(report.records) source records make \(report.expected) \(report.unit) by \(report.identity)\(held)",
            ]
            if report.unwritableCount > 0 {
                lines.append(
                    "  \(report.unwritableCount) records the target cannot write (dead-lettered, not compared): \(list(report.unwritable, report.unwritableCount))"
                )
            }
            if report.missingCount > 0 { lines.append("  \(report.missingCount) missing (\(list(report.missing, report.missingCount)))") }
            if report.differingCount > 0 {
                lines.append("  \(report.differingCount) differing (\(list(report.differing, report.differingCount)))")
            }
            let singular = String(report.unit.dropLast())
            if let extraCount = report.extraCount, extraCount > 0 {
                lines.append(
                    "  extra: \(extraCount) \(extraCount == 1 ? singular : report.unit) no source record makes (\(report.extra.joined(separator: "; "))\(extraCount > report.extra.count ? "; ..." : ""))"
                )
            } else if report.extraCount == nil {
                lines.append("  extra \(report.unit): not checked (the target cannot list them)")
            }
            lines.append("")
            lines.append(report.isEqual ? "equal" : "DIFFERENT")
            return lines.joined(separator: "\n") + "\n"
        }

        static func json(_ report: KeyedReconciliationReport, source: String, target: String) -> JSONValue {
            func positions(_ values: [KeyedReconciliationReport.Position]) -> JSONValue {
                .array(
                    values.map {
                        .object(["channel": .string($0.channel), "partition": .int(Int($0.partition)), "offset": .int(Int($0.offset))])
                    })
            }
            return .object([
                "source": .string(source), "target": .string(target), "store": .string(report.target), "unit": .string(report.unit),
                "equal": .bool(report.isEqual), "seconds": .number(report.seconds),
                "sourceRecords": .int(report.records), "expected": .int(report.expected), "held": report.held.map { .int($0) } ?? .null,
                "unwritableCount": .int(report.unwritableCount), "unwritable": positions(report.unwritable),
                "missingCount": .int(report.missingCount), "missing": positions(report.missing),
                "differingCount": .int(report.differingCount), "differing": positions(report.differing),
                "extraCount": report.extraCount.map { .int($0) } ?? .null, "extra": .array(report.extra.map { .string($0) }),
            ])
        }
    }
#endif
