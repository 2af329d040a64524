import Foundation
import Testing

/// `switchyard run` on a generate → s3 document, against moto with signatures enforced; the
/// credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in the process environment.
@Suite("S3 end to end through the switchyard binary")
struct S3EndToEndTests {
    static var binary: String {
        if let path = ProcessInfo.processInfo.environment["SWITCHYARD_BIN"] { return path }
        return S3Bed.repository.appendingPathComponent(".build/debug/switchyard").path
    }

    @Test func generatedMessagesAllArriveAsNDJSONObjectsKeyedByTheirOffsets() async throws {
        let service = try S3Bed.service()
        let bucket = S3Bed.bucketName("e2e")
        try S3Bed.boto("create", bucket)
        defer { _ = try? S3Bed.boto("delete", bucket) }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("s3-e2e-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let document = directory.appendingPathComponent("generate-to-s3.yaml")
        try """
        apiVersion: switchyard.dev/v1alpha1
        kind: Connector
        metadata:
          name: s3-end-to-end
        spec:
          sources:
            - name: orders
              generate:
                count: 3000
                shards: 3
                batchSize: 250
                key: "order-{{ partition }}-{{ offset }}"
                value: '{"id": {{ offset }}, "shard": {{ partition }}}'
                channel: orders
          targets:
            - name: archive
              s3:
                endpoint: "${env:S3_ENDPOINT}"
                region: "${env:S3_REGION}"
                bucket: "\(bucket)"
                compression: gzip
              batching: {maxMessages: 400, maxDelay: 50ms}
          routes:
            - from: [orders]
              to: [archive]
          observability:
            listen: ""
        """.write(to: document, atomically: true, encoding: .utf8)
        guard FileManager.default.isExecutableFile(atPath: Self.binary) else {
            Issue.record("\(Self.binary) is missing: run swift build --build-tests")
            return
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["run", "-c", document.path]
        var environment = ProcessInfo.processInfo.environment
        environment["S3_ENDPOINT"] = service.endpoint
        environment["S3_REGION"] = service.region
        environment["AWS_ACCESS_KEY_ID"] = service.accessKeyId
        environment["AWS_SECRET_ACCESS_KEY"] = service.secretAccessKey
        environment.removeValue(forKey: "AWS_SESSION_TOKEN")
        process.environment = environment
        let log = directory.appendingPathComponent("stderr.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        process.standardError = try FileHandle(forWritingTo: log)
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let deadline = ContinuousClock.now + .seconds(90)
        while process.isRunning && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
            Issue.record("switchyard did not finish within 90 s: \((try? String(contentsOf: log, encoding: .utf8))?.suffix(2000) ?? "")")
            return
        }
        #expect(process.terminationStatus == 0, "\((try? String(contentsOf: log, encoding: .utf8))?.suffix(2000) ?? "")")

        let objects = try S3Bed.getAll(bucket)
        var seen: [Int: Set<Int>] = [:]
        var lines = 0
        for (key, body) in objects {
            // orders/PARTITION/FIRST-LAST.ndjson.gz, and the content holds exactly that range.
            let parts = key.split(separator: "/")
            #expect(parts.count == 3 && parts[0] == "orders" && key.hasSuffix(".ndjson.gz"), "unexpected key \(key)")
            guard parts.count == 3, let partition = Int(parts[1]) else { continue }
            let range = parts[2].dropLast(".ndjson.gz".count).split(separator: "-").compactMap { Int($0) }
            var offsets: [Int] = []
            for line in body.split(separator: "\n") {
                let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                #expect(object?["partition"] as? Int == partition)
                #expect(object?["channel"] as? String == "orders")
                let offset = object?["offset"] as? Int ?? -1
                #expect(object?["key"] as? String == "order-\(partition)-\(offset)")
                offsets.append(offset)
                lines += 1
            }
            #expect(range == [offsets.first ?? -1, offsets.last ?? -1], "key \(key) does not name its first and last offsets")
            seen[partition, default: []].formUnion(offsets)
        }
        #expect(lines == 3000, "duplicates or losses: \(lines) lines for 3000 messages")
        for partition in 0..<3 {
            let offsets = seen[partition] ?? []
            #expect(
                offsets.count == 1000 && offsets.min() == 0 && offsets.max() == 999,
                "partition \(partition): \(offsets.count) distinct offsets")
        }
    }
}
