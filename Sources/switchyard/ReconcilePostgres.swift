#if Kafka && Postgres
    import KafkaConnector
    import PostgresConnector
    import SwitchyardCore

    extension ReconcileCommand {
        /// A Kafka source against the rows of a `postgres` target, compared by conflict key.
        func runPostgres(source: ConnectorEntry, target: ConnectorEntry, cluster: String) async throws {
            let show = self.show
            try await runKeyed(source: source, target: target, cluster: cluster) { reader, ranges in
                let rows = try PostgresRowReconciler(target: target)
                try rows.start()
                try reader.forEachMessage(in: ranges) { try rows.add($0) }
                return try rows.finish(show: show)
            }
        }
    }
#endif
