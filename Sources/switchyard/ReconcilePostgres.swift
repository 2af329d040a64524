#if Kafka && Postgres
import ArgumentParser
import KafkaConnector
import PostgresConnector
import SwitchyardConfig
import SwitchyardCore

extension ReconcileCommand {
    /// A Kafka source against the rows of a `postgres` target, compared by conflict key.
    func runPostgres(source: ConnectorEntry, target: ConnectorEntry, cluster: String) async throws {
        let show = self.show
        let report: PostgresRowReconciler.Report
        do {
            report = try await BlockingQueue(label: "switchyard.reconcile").run {
                let rows = try PostgresRowReconciler(target: target)
                let reader = try KafkaSourceReader(source: source, cluster: cluster)
                // The ranges first, so that they describe one moment as closely as the cluster allows.
                let ranges = try reader.topics.map { topic in (topic, try reader.ranges(topic: topic)) }
                try rows.start()
                for (topic, partitions) in ranges {
                    for range in partitions {
                        try reader.forEachMessage(topic: topic, partition: range.partition, from: range.start, to: range.end) { try rows.add($0) }
                    }
                }
                return try rows.finish(show: show)
            }
        } catch let error as OffsetTranslationError {
            throw KafkaBridgeDocument.fail("reconcile: \(error.message)")
        } catch let error as PostgresRowReconciler.Failure {
            throw KafkaBridgeDocument.fail("reconcile: \(error.description)")
        } catch let error as KafkaError {
            throw KafkaBridgeDocument.fail("reconcile: reading source '\(source.name)' on cluster \(cluster): \(error)")
        }
        if output == .json {
            print(Self.json(report, source: source.name, target: target.name).rendered())
        } else {
            print(Self.text(report, source: source.name, target: target.name), terminator: "")
        }
        if !report.isEqual { throw ExitCode(1) }
    }

    static func text(_ report: PostgresRowReconciler.Report, source: String, target: String) -> String {
        func list(_ positions: [PostgresRowReconciler.Position], _ count: Int) -> String {
            positions.map { "\($0.channel)[\($0.partition)]@\($0.offset)" }.joined(separator: ", ") + (count > positions.count ? ", ..." : "")
        }
        var lines = [
            "source \(source) -> target \(target) (table \(report.table))",
            "",
            "\(report.records) source records make \(report.expectedRows) rows by conflict key; the table holds \(report.tableRows)",
        ]
        if report.unwritableCount > 0 {
            lines.append("  \(report.unwritableCount) records the target cannot write (dead-lettered, not compared): \(list(report.unwritable, report.unwritableCount))")
        }
        if report.missingCount > 0 { lines.append("  \(report.missingCount) missing (\(list(report.missing, report.missingCount)))") }
        if report.differingCount > 0 { lines.append("  \(report.differingCount) differing (\(list(report.differing, report.differingCount)))") }
        if report.extraCount > 0 {
            lines.append("  extra: \(report.extraCount) row\(report.extraCount == 1 ? "" : "s") no source record makes (\(report.extra.joined(separator: "; "))\(report.extraCount > report.extra.count ? "; ..." : ""))")
        }
        lines.append("")
        lines.append(report.isEqual ? "equal" : "DIFFERENT")
        return lines.joined(separator: "\n") + "\n"
    }

    static func json(_ report: PostgresRowReconciler.Report, source: String, target: String) -> JSONValue {
        func positions(_ values: [PostgresRowReconciler.Position]) -> JSONValue {
            .array(values.map { .object(["channel": .string($0.channel), "partition": .int(Int($0.partition)), "offset": .int(Int($0.offset))]) })
        }
        return .object([
            "source": .string(source), "target": .string(target), "table": .string(report.table),
            "equal": .bool(report.isEqual), "seconds": .number(report.seconds),
            "sourceRecords": .int(report.records), "expectedRows": .int(report.expectedRows), "tableRows": .int(report.tableRows),
            "unwritableCount": .int(report.unwritableCount), "unwritable": positions(report.unwritable),
            "missingCount": .int(report.missingCount), "missing": positions(report.missing),
            "differingCount": .int(report.differingCount), "differing": positions(report.differing),
            "extraCount": .int(report.extraCount), "extra": .array(report.extra.map { .string($0) }),
        ])
    }
}
#endif
