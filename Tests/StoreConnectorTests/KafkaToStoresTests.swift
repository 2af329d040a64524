import Foundation
import Testing

/// The main integration end to end through the `switchyard` binary: orders produced into the
/// test bed's Kafka (the mock cluster) with kcat reach PostgreSQL, Redis and S3 at once, each
/// read back with its own client: psql rows, redis-cli values, S3 objects decompressed and
/// parsed. The process then stops with SIGTERM and exits 0.
@Suite("Kafka to PostgreSQL, Redis and S3")
struct KafkaToStoresTests {
    @Test func ordersFromKafkaArriveInEveryStoreExactlyAsProduced() async throws {
        // The outage tests of other suites stop a server for a while, and the env file lacks
        // it meanwhile: wait for each address.
        func value(_ name: String) async throws -> String {
            for _ in 0..<600 {
                if let value = try? StoreBed.value(name) { return value }
                try await Task.sleep(for: .milliseconds(100))
            }
            return try StoreBed.value(name)
        }
        let brokers = try await value("SWITCHYARD_KAFKA_BROKERS")
        let postgres = try await value("SWITCHYARD_POSTGRES_URL")
        let redisPort = try await value("SWITCHYARD_REDIS_PORT")
        let s3 = try S3Bed.service()
        let topic = StoreBed.unique("orders")
        let table = StoreBed.unique("orders").replacingOccurrences(of: "-", with: "_")
        let bucket = S3Bed.bucketName("kafka")
        let database = "7"
        try S3Bed.boto("create", bucket)
        defer { _ = try? S3Bed.boto("delete", bucket) }
        func psql(_ sql: String, expectSuccess: Bool = true) throws -> String {
            let result = try StoreBed.run("psql", [postgres, "-X", "-v", "ON_ERROR_STOP=1", "-tA", "-F", "|", "-c", sql])
            if expectSuccess { #expect(result.status == 0, "psql failed on \(sql): \(result.error)") }
            return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        func redis(_ arguments: String...) throws -> String {
            let result = try StoreBed.run("redis-cli", ["-h", "127.0.0.1", "-p", redisPort, "-n", database, "--raw"] + arguments)
            return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        defer { _ = try? psql("DROP TABLE IF EXISTS \(table)") }
        _ = try redis("FLUSHDB")

        let count = 3000
        let orders = (0..<count).map { id in
            "order-\(id)|{\"id\": \(id), \"customer\": \"c\(id % 17)\", \"total\": \(id % 100).5}"
        }
        let produced = try StoreBed.run(
            "kcat", ["-P", "-b", brokers, "-t", topic, "-K", "|"], input: orders.joined(separator: "\n") + "\n")
        #expect(produced.status == 0, "kcat failed: \(produced.error)")

        let port = Int.random(in: 20_000...29_999)
        let running = try StoreBed.RunningDocument(
            """
            apiVersion: switchyard.dev/v1alpha1
            kind: Connector
            metadata: {name: kafka-to-stores}
            spec:
              sources:
                - name: orders
                  kafka:
                    brokers: ["\(brokers)"]
                    topics: [\(topic)]
                    group: \(topic)
                    commitInterval: 200ms
                    options: {session.timeout.ms: "3000", heartbeat.interval.ms: "500"}
              targets:
                - name: warehouse
                  postgres:
                    url: "\(postgres)"
                    table: \(table)
                    mode: upsert
                    conflictColumns: [id]
                    columns: {id: "{{ json.id }}", customer: "{{ json.customer }}", total: "{{ json.total }}", doc: "{{ value }}"}
                    types: {id: bigint, customer: text, total: numeric, doc: jsonb}
                    createTable: true
                - name: cache
                  redis: {url: "redis://127.0.0.1:\(redisPort)/\(database)", command: set, key: "order:{{ json.id }}"}
                - name: archive
                  s3:
                    endpoint: "\(s3.endpoint)"
                    region: "\(s3.region)"
                    bucket: "\(bucket)"
                    accessKeyId: "\(s3.accessKeyId)"
                    secretAccessKey: "\(s3.secretAccessKey)"
                    key: "orders/{{ partition }}/{{ offset }}-{{ lastOffset }}.ndjson.gz"
                    compression: gzip
                  batching: {maxMessages: 1000, maxDelay: 200ms}
              routes:
                - from: [orders]
                  to: [warehouse, cache, archive]
              delivery:
                retry: {initialBackoff: 50ms, maxBackoff: 500ms}
              observability: {listen: "127.0.0.1:\(port)", logFormat: json}
            """)
        // Other suites stop redis-server and PostgreSQL for their outage tests: a pause here
        // only delays the writes, hence the generous limit. The wait sleeps without holding a
        // thread of the cooperative pool, which the other suites' async tests need.
        var arrived = false
        let deadline = ContinuousClock.now + .seconds(120)
        while !arrived && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(200))
            arrived =
                (Int((try? psql("SELECT count(*) FROM \(table)", expectSuccess: false)) ?? "") ?? 0) == count
                && (Int((try? redis("DBSIZE")) ?? "") ?? 0) == count
                && ((try? S3Bed.getAll(bucket))?.values.reduce(0) { $0 + $1.split(separator: "\n").count } ?? 0) == count
        }
        #expect(arrived, "not every order reached every store: \(running.log.suffix(2000))")
        running.process.interrupt()
        while running.process.isRunning && ContinuousClock.now < deadline + .seconds(30) {
            try await Task.sleep(for: .milliseconds(50))
        }
        let status = await running.wait(timeout: 1)
        #expect(status == 0, "switchyard exited \(String(describing: status)): \(running.log.suffix(2000))")

        #expect(try psql("SELECT count(*), count(DISTINCT customer), min(id), max(id) FROM \(table)") == "\(count)|17|0|\(count - 1)")
        #expect(try psql("SELECT customer, total, doc->>'id' FROM \(table) WHERE id = 42") == "c8|42.5|42")
        #expect(try redis("GET", "order:42") == "{\"id\": 42, \"customer\": \"c8\", \"total\": 42.5}")
        let objects = try S3Bed.getAll(bucket)
        var keys = Set<String>()
        for (_, body) in objects {
            for line in body.split(separator: "\n") {
                let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                #expect(object?["channel"] as? String == topic)
                if let key = object?["key"] as? String { keys.insert(key) }
            }
        }
        #expect(keys == Set((0..<count).map { "order-\($0)" }), "every order is archived once, with its Kafka key")
    }
}
