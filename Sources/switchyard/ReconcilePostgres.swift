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
        try printKeyed(report, source: source, target: target)
    }
}
#endif
