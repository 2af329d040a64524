#if Kafka && Redis
    import KafkaConnector
    import RedisConnector
    import SwitchyardCore

    extension ReconcileCommand {
        /// A Kafka source against the keys of a `redis` target (set or hset), compared by key. The
        /// source is read once per pass (one pass up to a million keys).
        func runRedis(source: ConnectorEntry, target: ConnectorEntry, cluster: String) async throws {
            let show = self.show
            try await runKeyed(source: source, target: target, cluster: cluster) { reader, ranges in
                let keys = try RedisKeyReconciler(target: target)
                try keys.connect()
                let passes = RedisKeyReconciler.passes(records: KafkaSourceReader.count(ranges))
                for pass in 0..<passes {
                    keys.begin(pass: pass, of: passes)
                    try reader.forEachMessage(in: ranges) { keys.add($0) }
                    try keys.endPass(show: show)
                }
                return keys.finish()
            }
        }
    }
#endif
