import Foundation
import Testing
import TestBedSupport
#if canImport(Glibc)
    import Glibc
#endif

/// Three `switchyard run` processes as competing consumers of one RabbitMQ queue, writing to S3
/// (moto) with the default object key and to PostgreSQL (upsert on a key made from the session
/// and the position), each stopped and started again between rounds.
///
/// Delivery tags start again at 1 on every connection, and the connection generation (the
/// message's partition) at 1 in every process: keys made from partition and offsets alone are
/// the same for different messages in different processes, or in one process before and after
/// a restart, and S3 silently replaces the earlier object. Every message was acknowledged, so
/// those messages are gone. The test counts what is in the bucket.
@Suite("RabbitMQ to S3 and PostgreSQL with replicas and restarts", .serialized, .rabbitMQBroker(.shared))
struct RabbitMQToS3ReplicaTests {
    func start(_ config: URL, log: URL, environment: [String: String]) throws -> Process {
        try startSwitchyard(config, log: log, environment: environment)
    }

    func stop(_ process: Process, log: URL) {
        process.terminate()
        process.waitUntilExit()
        #expect(
            process.terminationStatus == 0,
            "a stopped replica exits 0: \((try? String(contentsOf: log, encoding: .utf8))?.suffix(1500) ?? "")")
    }

    @Test(.timeLimit(.minutes(5)))
    func everyMessageIsStoredOnceAcrossReplicasAndRestarts() async throws {
        let service = try S3TestBed.service()
        let queue = TestBed.uniqueName("replicas-s3")
        try Admin().declare(queue)
        defer { try? Admin().delete(queue) }
        let bucket = "sy-replicas-\(UInt32.random(in: 0...UInt32.max))"
        try S3TestBed.boto("create", bucket)
        defer { _ = try? S3TestBed.boto("delete", bucket) }

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "switchyard-replicas-s3-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let config = directory.appendingPathComponent("replica.yaml")
        let table = "replicas_\(UInt32.random(in: 0...UInt32.max))"
        let postgres = try ServicesFile.value("SWITCHYARD_POSTGRES_URL")
        defer { _ = try? TestBed.run("/usr/bin/psql", [postgres, "-X", "-q", "-c", "DROP TABLE IF EXISTS \(table)"]) }
        // Small batches: many objects per process, each keyed by its delivery tags.
        try """
        sources:
          - name: orders
            rabbitmq: {url: "\(try TestBed.amqpURL())", queue: \(queue), prefetch: 100}
        targets:
          - name: archive
            s3: {endpoint: "${env:S3_ENDPOINT}", region: "${env:S3_REGION}", bucket: "\(bucket)"}
            batching: {maxMessages: 25, maxDelay: 5ms}
          - name: rows
            postgres:
              url: "\(postgres)"
              table: \(table)
              mode: upsert
              conflictColumns: [id]
              columns: {id: "{{ session }}-{{ partition }}-{{ offset }}", doc: "{{ value }}"}
              createTable: true
            batching: {maxMessages: 40, maxDelay: 5ms}
        routes:
          - {from: [orders], to: [archive, rows]}
        observability: {listen: ""}
        """.write(to: config, atomically: true, encoding: .utf8)
        var environment = ProcessInfo.processInfo.environment
        environment["S3_ENDPOINT"] = service.endpoint
        environment["S3_REGION"] = service.region
        environment["AWS_ACCESS_KEY_ID"] = service.accessKeyId
        environment["AWS_SECRET_ACCESS_KEY"] = service.secretAccessKey
        environment.removeValue(forKey: "AWS_SESSION_TOKEN")

        let replicas = 3
        let rounds = 3
        let perRound = 1500
        let logs = (0..<replicas).map { directory.appendingPathComponent("replica-\($0).log") }
        var running = try (0..<replicas).map { try start(config, log: logs[$0], environment: environment) }
        for round in 0..<rounds {
            // Each round: publish while the replicas consume, wait until the queue is empty and
            // nothing is unacknowledged, then stop every replica and start it again.
            try await RabbitMQBrokerTests().publish(perRound, to: queue, start: round * perRound)
            let drained = await eventually("round \(round): the queue is consumed and acknowledged", within: .seconds(120)) {
                (try? Admin().messageCount(queue)) == 0 && (try? TestBed.queueCounts(queue)?.unacknowledged) == 0
            }
            guard drained else { break }
            for index in 0..<replicas {
                stop(running[index], log: logs[index])
                if round < rounds - 1 { running[index] = try start(config, log: logs[index], environment: environment) }
            }
        }
        for process in running where process.isRunning { stop(process, log: logs[0]) }

        let objects = try S3TestBed.getAll(bucket)
        var stored: [String] = []
        var badKeys: [String] = []
        for (key, body) in objects {
            // queue/GENERATION/SESSION/FIRST-LAST.ndjson: the session is 16 hex digits.
            let parts = key.split(separator: "/")
            if !(parts.count == 4 && parts[0] == Substring(queue) && parts[2].count == 16) { badKeys.append(key) }
            for line in body.split(separator: "\n") {
                let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                stored.append(object?["value"] as? String ?? "")
            }
        }
        #expect(badKeys.isEmpty, "\(badKeys.count) keys without a session, e.g. \(badKeys.sorted().prefix(3))")
        let expected = Set((0..<(rounds * perRound)).map { "{\"n\":\($0)}" })
        let distinct = Set(stored)
        let missing = expected.subtracting(distinct)
        #expect(
            missing.isEmpty,
            "\(missing.count) of \(expected.count) messages are missing from the bucket (\(objects.count) objects), e.g. \(missing.sorted().prefix(5))"
        )
        #expect(distinct.isSubset(of: expected), "nothing invented")
        // Every replica stopped gracefully with the queue drained: nothing was redelivered.
        #expect(stored.count == expected.count, "\(stored.count - distinct.count) duplicates")
        #expect(try Admin().messageCount(queue) == 0)

        // PostgreSQL: one row per message, none replaced by another message's content.
        let counts = try TestBed.run(
            "/usr/bin/psql", [postgres, "-X", "-q", "-t", "-A", "-c", "SELECT count(*), count(DISTINCT doc) FROM \(table)"]
        )
        .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(counts == "\(expected.count)|\(expected.count)", "rows | distinct messages: \(counts)")
    }
}
