import Foundation
import Testing
import TestBedSupport

/// `switchyard reconcile` on a Kafka source routed to an S3 target, through the binary: the
/// records of a topic copied by a bounded run into gzip NDJSON objects reconcile as equal; then
/// a line removed from an object, a line altered and an object that no Switchyard target wrote
/// are each named, with the source positions or the object and line.
@Suite("Reconciling a Kafka topic with its S3 copy")
struct KafkaToS3ReconcileTests {
    @Test func reconcileNamesMissingAlteredAndExtraLinesOfAnS3Copy() async throws {
        let brokers = try StoreBed.value("SWITCHYARD_KAFKA_BROKERS")
        let s3 = try S3Bed.service()
        let topic = StoreBed.unique("ledger")
        let bucket = S3Bed.bucketName("reconcile")
        try S3Bed.boto("create", bucket)
        defer { _ = try? S3Bed.boto("delete", bucket) }
        let count = 400
        let lines = (0..<count).map { "k\($0)|{\"entry\": \($0), \"text\": \"line \\\"\($0)\\\"\\twith a tab\"}" }
        let produced = try StoreBed.run(
            "kcat", ["-P", "-b", brokers, "-t", topic, "-K", "|", "-H", "trace=t1"], input: lines.joined(separator: "\n") + "\n")
        #expect(produced.status == 0, "kcat failed: \(produced.error)")

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(StoreBed.unique("reconcile-s3"))
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        func document(format: String = "ndjson") throws -> String {
            let path = directory.appendingPathComponent("\(format).yaml").path
            try """
            apiVersion: switchyard.dev/v1alpha1
            kind: Connector
            metadata: {name: ledger-archive}
            spec:
              sources:
                - name: ledger
                  kafka:
                    brokers: ["\(brokers)"]
                    topics: [\(topic)]
                    group: \(topic)
                    options: {session.timeout.ms: "3000", heartbeat.interval.ms: "500"}
              targets:
                - name: archive
                  s3:
                    endpoint: "\(s3.endpoint)"
                    region: "\(s3.region)"
                    bucket: "\(bucket)"
                    accessKeyId: "\(s3.accessKeyId)"
                    secretAccessKey: "\(s3.secretAccessKey)"
                    key: "ledger/{{ partition }}/{{ offset }}-{{ lastOffset }}.ndjson.gz"
                    compression: gzip
                    format: \(format)
                  batching: {maxMessages: 50, maxDelay: 100ms}
              routes:
                - {from: [ledger], to: [archive]}
              observability: {listen: "127.0.0.1:\(Int.random(in: 20_000...29_999))"}
            """.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
        let path = try document()
        let copy = try await StoreBed.switchyard(["run", "-c", path, "--stop-at", "end"])
        #expect(copy.status == 0, "the bounded copy failed: \(copy.error.suffix(2000))")

        // The complete copy: equal, every record read on both sides, exit 0.
        let equal = try await StoreBed.switchyard(["reconcile", "-c", path, "--output", "json", "--header", "trace"])
        #expect(equal.status == 0, "\(equal.output) \(equal.error)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(equal.output.utf8)) as? [String: Any])
        let topicReport = try #require((report["topics"] as? [[String: Any]])?.first)
        #expect(report["equal"] as? Bool == true)
        #expect(topicReport["sourceRecords"] as? Int == count && topicReport["targetRecords"] as? Int == count, "\(topicReport)")
        #expect(topicReport["targetTopic"] as? String == "s3://\(bucket)/ledger/")

        // Tamper with one object: drop its first line, alter its second; add an object that no
        // Switchyard target wrote.
        let objects = try S3Bed.getAll(bucket)
        let (objectKey, body) = try #require(objects.sorted { $0.key < $1.key }.first { $0.value.split(separator: "\n").count >= 3 })
        var objectLines = body.split(separator: "\n").map(String.init)
        let dropped = try #require(try JSONSerialization.jsonObject(with: Data(objectLines[0].utf8)) as? [String: Any])
        let altered = try #require(try JSONSerialization.jsonObject(with: Data(objectLines[1].utf8)) as? [String: Any])
        let droppedOffset = try #require(dropped["offset"] as? Int)
        let alteredOffset = try #require(altered["offset"] as? Int)
        let partition = try #require(dropped["partition"] as? Int)
        objectLines[1] = objectLines[1].replacingOccurrences(of: "with a tab", with: "with a TAB")
        objectLines.removeFirst()
        try S3TestBed.put(bucket, objectKey, objectLines.joined(separator: "\n") + "\n")
        try S3TestBed.put(bucket, "ledger/notes.ndjson", "written by hand\n")

        let different = try await StoreBed.switchyard(["reconcile", "-c", path, "--output", "json"])
        #expect(different.status == 1, "\(different.output) \(different.error)")
        let differentReport = try #require(try JSONSerialization.jsonObject(with: Data(different.output.utf8)) as? [String: Any])
        let differentTopic = try #require((differentReport["topics"] as? [[String: Any]])?.first)
        #expect(differentReport["equal"] as? Bool == false)
        #expect(differentTopic["extraCount"] as? Int == 1, "\(differentTopic)")
        let partitionReport = try #require(
            (differentTopic["partitions"] as? [[String: Any]])?.first { $0["partition"] as? Int == partition })
        #expect(partitionReport["missing"] as? [Int] == [droppedOffset], "\(partitionReport)")
        #expect(partitionReport["differing"] as? [Int] == [alteredOffset], "\(partitionReport)")
        let others = (differentTopic["partitions"] as? [[String: Any]] ?? []).filter { $0["partition"] as? Int != partition }
        #expect(others.allSatisfy { $0["equal"] as? Bool == true }, "\(others)")

        let text = try await StoreBed.switchyard(["reconcile", "-c", path])
        #expect(text.status == 1)
        #expect(
            text.output.contains("1 missing (source offsets \(droppedOffset))") && text.output.contains("1 differing (\(alteredOffset))"),
            "\(text.output)")
        #expect(
            text.output.contains(
                "extra: 1 target record without a source position (ledger/notes.ndjson line 1: not an NDJSON line of a Switchyard target)"),
            "\(text.output)")

        // Raw objects carry no positions: refused, naming the field.
        let raw = try await StoreBed.switchyard(["reconcile", "-c", try document(format: "raw")])
        #expect(raw.status == 1)
        #expect(raw.error.contains("spec.targets[0].s3.format: raw objects hold no source positions"), "\(raw.error)")
    }
}
