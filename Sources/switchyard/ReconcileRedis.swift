#if Kafka && Redis
import ArgumentParser
import KafkaConnector
import RedisConnector
import SwitchyardConfig
import SwitchyardCore

extension ReconcileCommand {
    /// A Kafka source against the keys of a `redis` target (set or hset), compared by key. The
    /// source is read once per pass (one pass up to a million keys).
    func runRedis(source: ConnectorEntry, target: ConnectorEntry, cluster: String) async throws {
        let show = self.show
        let report: KeyedReconciliationReport
        do {
            report = try await BlockingQueue(label: "switchyard.reconcile").run {
                let keys = try RedisKeyReconciler(target: target)
                let reader = try KafkaSourceReader(source: source, cluster: cluster)
                let ranges = try reader.topics.map { topic in (topic, try reader.ranges(topic: topic)) }
                let records = ranges.reduce(0) { total, topic in total + topic.1.reduce(0) { $0 + Int($1.end - $1.start) } }
                try keys.connect()
                let passes = RedisKeyReconciler.passes(records: records)
                for pass in 0..<passes {
                    keys.begin(pass: pass, of: passes)
                    for (topic, partitions) in ranges {
                        for range in partitions {
                            try reader.forEachMessage(topic: topic, partition: range.partition, from: range.start, to: range.end) { keys.add($0) }
                        }
                    }
                    try keys.endPass(show: show)
                }
                return keys.finish()
            }
        } catch let error as OffsetTranslationError {
            throw KafkaBridgeDocument.fail("reconcile: \(error.message)")
        } catch let error as RedisKeyReconciler.Failure {
            throw KafkaBridgeDocument.fail("reconcile: \(error.description)")
        } catch let error as KafkaError {
            throw KafkaBridgeDocument.fail("reconcile: reading source '\(source.name)' on cluster \(cluster): \(error)")
        }
        try printKeyed(report, source: source, target: target)
    }
}
#endif
