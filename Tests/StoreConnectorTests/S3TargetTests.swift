import Foundation
import Testing
import SwitchyardCore
@testable import S3Connector

/// The s3 target against moto's S3 server with signature checking enforced: every request must
/// be correctly SigV4-signed, and objects are read back with boto3.
@Suite("S3 target against moto", .serialized)
struct S3TargetTests {
    static func expectedLine(_ message: Message) -> String {
        let key = message.key.map { "\"\(String(decoding: $0, as: UTF8.self))\"" } ?? "null"
        let value = String(decoding: message.value, as: UTF8.self).replacingOccurrences(of: "\"", with: "\\\"")
        let headers = message.headers.map { "[\"\($0.name)\",\"\(String(decoding: $0.value, as: UTF8.self))\"]" }.joined(separator: ",")
        return
            #"{"key":\#(key),"value":"\#(value)","headers":[\#(headers)],"channel":"\#(message.channel)","partition":\#(message.partition),"offset":\#(message.offset),"timestamp":\#(message.timestamp)}"#
            + "\n"
    }

    @Test func aBatchBecomesOneNDJSONObjectUnderTheDefaultKeyWithItsOffsets() async throws {
        let bucket = S3Bed.bucketName("ndjson")
        try S3Bed.boto("create", bucket)
        defer { _ = try? S3Bed.boto("delete", bucket) }
        let target = try S3Bed.target(bucket: bucket)
        try await target.open()
        let messages = (10...14).map { S3Bed.message($0, partition: 3, key: "k\($0)", headers: [Header("type", "order")]) }
        let result = try await target.write(messages)
        #expect(result.failures.isEmpty)
        let objects = try S3Bed.list(bucket)
        let expected = messages.map(Self.expectedLine).joined()
        #expect(objects == ["orders/3/10-14.ndjson": expected.utf8.count])
        let stored = try S3Bed.get(bucket, "orders/3/10-14.ndjson")
        #expect(stored.size == expected.utf8.count)
        #expect(stored.contentLength == expected.utf8.count)
        #expect(stored.contentType == "application/x-ndjson")
        #expect(stored.body == expected)
        let first = try JSONSerialization.jsonObject(with: Data(stored.body.split(separator: "\n")[0].utf8)) as? [String: Any]
        #expect(first?["key"] as? String == "k10")
        #expect(first?["value"] as? String == #"{"id":10}"#)
        #expect(first?["offset"] as? Int == 10)
        await target.close()
    }

    @Test func messagesOfSeveralPartitionsBecomeOneObjectPerPartition() async throws {
        let bucket = S3Bed.bucketName("parts")
        try S3Bed.boto("create", bucket)
        defer { _ = try? S3Bed.boto("delete", bucket) }
        let target = try S3Bed.target(bucket: bucket)
        try await target.open()
        let messages = [
            S3Bed.message(5, partition: 0), S3Bed.message(7, partition: 1), S3Bed.message(6, partition: 0), S3Bed.message(8, partition: 1),
        ]
        let result = try await target.write(messages)
        #expect(result.failures.isEmpty)
        let bodies = try S3Bed.getAll(bucket)
        #expect(bodies["orders/0/5-6.ndjson"] == Self.expectedLine(messages[0]) + Self.expectedLine(messages[2]))
        #expect(bodies["orders/1/7-8.ndjson"] == Self.expectedLine(messages[1]) + Self.expectedLine(messages[3]))
        #expect(bodies.count == 2)
    }

    @Test func gzipObjectsRoundTrip() async throws {
        let bucket = S3Bed.bucketName("gzip")
        try S3Bed.boto("create", bucket)
        defer { _ = try? S3Bed.boto("delete", bucket) }
        let target = try S3Bed.target(bucket: bucket, [("compression", "gzip")])
        try await target.open()
        let messages = (0..<200).map { S3Bed.message(Int64($0), value: #"{"id":\#($0),"note":"repeated text repeated text"}"#) }
        _ = try await target.write(messages)
        let objects = try S3Bed.list(bucket)
        #expect(Array(objects.keys) == ["orders/0/0-199.ndjson.gz"])
        let stored = try S3Bed.get(bucket, "orders/0/0-199.ndjson.gz")
        let expected = messages.map(Self.expectedLine).joined()
        #expect(stored.gzip)
        #expect(stored.contentType == "application/gzip")
        #expect(stored.body == expected)
        #expect(stored.size == objects["orders/0/0-199.ndjson.gz"])
        #expect(stored.size < expected.utf8.count / 3)
    }

    @Test func rawFormatJoinsValuesWithTheSeparator() async throws {
        let bucket = S3Bed.bucketName("raw")
        try S3Bed.boto("create", bucket)
        defer { _ = try? S3Bed.boto("delete", bucket) }
        let target = try S3Bed.target(bucket: bucket, [("format", "raw"), ("separator", "||"), ("contentType", "text/plain")])
        try await target.open()
        _ = try await target.write((1...3).map { S3Bed.message($0, value: "value-\($0)") })
        let stored = try S3Bed.get(bucket, "orders/0/1-3.txt")
        #expect(stored.body == "value-1||value-2||value-3")
        #expect(stored.size == 25)
        #expect(stored.contentType == "text/plain")
    }

    @Test func aWrongSecretPausesTheTargetWithTargetDown() async throws {
        let bucket = S3Bed.bucketName("auth")
        try S3Bed.boto("create", bucket)
        defer { _ = try? S3Bed.boto("delete", bucket) }
        let service = try S3Bed.service()
        let target = try S3Bed.target(
            bucket: bucket, [("accessKeyId", service.accessKeyId), ("secretAccessKey", "wrong" + service.secretAccessKey)])
        let error = await #expect(throws: ConnectorError.self) { try await target.open() }
        #expect(error?.kind == .targetDown)
        #expect(error?.message.contains("bucket '\(bucket)'") == true)
        #expect(error?.message.contains("403") == true)
        #expect(error?.message.contains(service.secretAccessKey) == false)
        #expect(!target.health.isUp)
    }

    @Test func aMissingBucketPausesTheTargetAndIsNamed() async throws {
        let bucket = S3Bed.bucketName("missing")
        let target = try S3Bed.target(bucket: bucket)
        let error = await #expect(throws: ConnectorError.self) { try await target.open() }
        #expect(error?.kind == .targetDown)
        #expect(error?.message.contains("bucket '\(bucket)' does not exist") == true)
    }

    @Test func aBucketDeletedAfterOpenFailsTheWriteWithTargetDownNamingIt() async throws {
        let bucket = S3Bed.bucketName("gone")
        try S3Bed.boto("create", bucket)
        let target = try S3Bed.target(bucket: bucket)
        try await target.open()
        try S3Bed.boto("delete", bucket)
        let error = await #expect(throws: ConnectorError.self) { _ = try await target.write([S3Bed.message(1)]) }
        #expect(error?.kind == .targetDown)
        #expect(error?.message.contains("bucket '\(bucket)' does not exist") == true)
        #expect(!target.health.isUp)
        // Once the bucket is back, the next attempt reconnects and writes.
        try S3Bed.boto("create", bucket)
        defer { _ = try? S3Bed.boto("delete", bucket) }
        let result = try await target.write([S3Bed.message(1)])
        #expect(result.failures.isEmpty)
        #expect(target.health.isUp)
        #expect(try S3Bed.list(bucket).keys.sorted() == ["orders/0/1-1.ndjson"])
    }

    @Test func anUnreachableEndpointIsRetriable() async throws {
        let unreachable = try S3Target(
            ConnectorSetup(
                name: "archive",
                options: S3Bed.options([
                    ("endpoint", "http://127.0.0.1:1"), ("bucket", "sy-unreachable"), ("accessKeyId", "A"), ("secretAccessKey", "B"),
                ]).values!,
                logger: S3Bed.quiet, memoryLimit: 1 << 20))
        let error = await #expect(throws: ConnectorError.self) { try await unreachable.open() }
        #expect(error?.kind == .retriable)
        #expect(error?.message.contains("sy-unreachable") == true)
    }

    @Test func theSameBatchDeliveredTwiceLeavesOneObject() async throws {
        let bucket = S3Bed.bucketName("redeliver")
        try S3Bed.boto("create", bucket)
        defer { _ = try? S3Bed.boto("delete", bucket) }
        let target = try S3Bed.target(bucket: bucket)
        try await target.open()
        let messages = (100...149).map { S3Bed.message($0, partition: 2) }
        _ = try await target.write(messages)
        let before = try S3Bed.getAll(bucket)
        _ = try await target.write(messages)
        let after = try S3Bed.getAll(bucket)
        #expect(Array(after.keys) == ["orders/2/100-149.ndjson"])
        #expect(after == before)
        #expect(after["orders/2/100-149.ndjson"] == messages.map(Self.expectedLine).joined())
    }

    /// Positions that restart (a RabbitMQ connection's delivery tags, a link sender's
    /// sequences) carry a session: two sessions with the same partition and offsets are two
    /// objects under two keys, never one object overwriting the other.
    @Test func theSamePositionsOfTwoSessionsAreTwoObjects() async throws {
        let bucket = S3Bed.bucketName("sessions")
        try S3Bed.boto("create", bucket)
        defer { _ = try? S3Bed.boto("delete", bucket) }
        let target = try S3Bed.target(bucket: bucket)
        try await target.open()
        func batch(_ session: UInt64, _ tag: String) -> [Message] {
            (1...5).map {
                var message = S3Bed.message(Int64($0), partition: 1, value: "{\"from\":\"\(tag)\",\"n\":\($0)}")
                message.session = session
                return message
            }
        }
        let first = batch(0x00ab_cdef_0123_4567, "first")
        let second = batch(0xfedc_ba98_7654_3210, "second")
        // One write holding both sessions, then the first again (a redelivery): idempotent.
        #expect(try await target.write(first + second).failures.isEmpty)
        #expect(try await target.write(first).failures.isEmpty)
        let bodies = try S3Bed.getAll(bucket)
        #expect(
            bodies == [
                "orders/1/00abcdef01234567/1-5.ndjson": first.map(Self.expectedLine).joined(),
                "orders/1/fedcba9876543210/1-5.ndjson": second.map(Self.expectedLine).joined(),
            ])
        await target.close()
    }

    @Test func maxObjectBytesSplitsABatchIntoSeveralObjects() async throws {
        let bucket = S3Bed.bucketName("split")
        try S3Bed.boto("create", bucket)
        defer { _ = try? S3Bed.boto("delete", bucket) }
        let target = try S3Bed.target(bucket: bucket, [("format", "raw"), ("maxObjectBytes", "250")])
        try await target.open()
        let value = String(repeating: "x", count: 100)
        _ = try await target.write((0..<5).map { S3Bed.message($0, value: value) })
        let objects = try S3Bed.list(bucket)
        #expect(objects == ["orders/0/0-1.txt": 201, "orders/0/2-3.txt": 201, "orders/0/4-4.txt": 100])
    }

    @Test func aDateKeyTemplateStartsANewObjectWhenTheHourChanges() async throws {
        let bucket = S3Bed.bucketName("date")
        try S3Bed.boto("create", bucket)
        defer { _ = try? S3Bed.boto("delete", bucket) }
        let target = try S3Bed.target(
            bucket: bucket, [("key", "orders/{{ timestamp | date: 'yyyy/MM/dd/HH' }}/{{ partition }}-{{ offset }}-{{ lastOffset }}.ndjson")]
        )
        try await target.open()
        // 2023-11-14 22:59:59 and 23:00:00 UTC.
        let before: Int64 = 1_700_002_799_000
        let messages = [
            S3Bed.message(0, timestamp: before), S3Bed.message(1, timestamp: before + 500),
            S3Bed.message(2, timestamp: before + 1000), S3Bed.message(3, timestamp: before + 2000),
        ]
        _ = try await target.write(messages)
        let bodies = try S3Bed.getAll(bucket)
        #expect(Set(bodies.keys) == ["orders/2023/11/14/22/0-0-1.ndjson", "orders/2023/11/14/23/0-2-3.ndjson"])
        #expect(bodies["orders/2023/11/14/23/0-2-3.ndjson"] == Self.expectedLine(messages[2]) + Self.expectedLine(messages[3]))
    }

    @Test func maxObjectAgeSplitsByMessageTimestamps() async throws {
        let bucket = S3Bed.bucketName("age")
        try S3Bed.boto("create", bucket)
        defer { _ = try? S3Bed.boto("delete", bucket) }
        let target = try S3Bed.target(bucket: bucket, [("maxObjectAge", "1m"), ("format", "raw")])
        try await target.open()
        let start: Int64 = 1_700_000_000_000
        _ = try await target.write([
            S3Bed.message(0, value: "a", timestamp: start), S3Bed.message(1, value: "b", timestamp: start + 60_000),
            S3Bed.message(2, value: "c", timestamp: start + 60_001), S3Bed.message(3, value: "d", timestamp: start + 61_000),
        ])
        #expect(try S3Bed.list(bucket) == ["orders/0/0-1.txt": 3, "orders/0/2-3.txt": 3])
    }

    @Test func objectsAboveTheThresholdGoAsAMultipartUpload() async throws {
        let bucket = S3Bed.bucketName("multipart")
        try S3Bed.boto("create", bucket)
        defer { _ = try? S3Bed.boto("delete", bucket) }
        let target = try S3Bed.target(
            bucket: bucket,
            [
                ("format", "raw"), ("multipartThreshold", "6MiB"), ("partSize", "5MiB"), ("maxObjectBytes", "64MiB"),
            ])
        try await target.open()
        // 11 values of 1 MiB: 3 parts (5 + 5 + 1 MiB and the separators).
        let messages = (0..<11).map { i in
            Message(value: [UInt8](repeating: UInt8(65 + i), count: 1 << 20), channel: "big", partition: 0, offset: Int64(i))
        }
        var expected: [UInt8] = []
        for (i, message) in messages.enumerated() {
            if i > 0 { expected.append(0x0A) }
            expected.append(contentsOf: message.value)
        }
        let result = try await target.write(messages)
        #expect(result.failures.isEmpty)
        let stored = try S3Bed.get(bucket, "big/0/0-10.txt")
        #expect(stored.size == expected.count)
        #expect(stored.sha256 == S3Digest.sha256Hex(expected))
        #expect(try S3Bed.list(bucket) == ["big/0/0-10.txt": expected.count])
    }

    @Test func credentialsFromASharedCredentialsFileProfileSignCorrectly() async throws {
        let bucket = S3Bed.bucketName("profile")
        try S3Bed.boto("create", bucket)
        defer { _ = try? S3Bed.boto("delete", bucket) }
        let service = try S3Bed.service()
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("s3-credentials-\(UUID().uuidString)")
        try """
        [default]
        aws_access_key_id = AKIAWRONGWRONGWRONG
        aws_secret_access_key = nope

        [archive]
        aws_access_key_id = \(service.accessKeyId)
        aws_secret_access_key = \(service.secretAccessKey)
        """.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let resolved = try S3Credentials.resolve(
            .init(profile: "archive"),
            environment: ["AWS_SHARED_CREDENTIALS_FILE": file.path, "AWS_ACCESS_KEY_ID": "ignored-with-a-profile"])
        #expect(resolved.accessKeyId == service.accessKeyId)
        #expect(resolved.origin.contains("profile 'archive'"))
        let target = try S3Bed.target(bucket: bucket)
        let client = try S3Client(endpoint: target.endpoint, credentials: resolved, connections: 1, label: "test")
        try await client.run { connection in
            try client.putObject(connection, key: "from-profile.txt", body: Array("hello".utf8), contentType: "text/plain")
        }
        #expect(try S3Bed.list(bucket) == ["from-profile.txt": 5])
    }
}

/// Option validation and the parts that need no server.
@Suite("S3 target options and encoding")
struct S3OptionTests {
    @Test func aMissingOrEmptyBucketIsReportedWithItsPath() {
        let missing = S3Bed.options([("endpoint", "http://127.0.0.1:9000")])
        #expect(missing.issues.map(\.path) == ["s3.bucket"])
        let empty = S3Bed.options([("bucket", "")])
        #expect(empty.issues.map(\.path) == ["s3.bucket"])
        let bad = S3Bed.options([("bucket", "Not_A_Bucket")])
        #expect(bad.issues.map(\.path) == ["s3.bucket"])
    }

    @Test func impossibleCombinationsAreReported() {
        let result = S3Bed.options([
            ("bucket", "archive"), ("separator", ","), ("partSize", "1MiB"), ("accessKeyId", "AKIA"),
            ("key", "{{ nope }}/{{ lastOffset }}"), ("endpoint", "s3.example.com"),
        ])
        #expect(Set(result.issues.map(\.path)) == ["s3.separator", "s3.partSize", "s3.secretAccessKey", "s3.key", "s3.endpoint"])
        #expect(result.issues.first { $0.path == "s3.key" }?.message.contains("unknown variable 'nope'") == true)
        let secret = S3Bed.options([("bucket", "archive"), ("secretAccessKey", "s3cr3t-value"), ("profile", "x")])
        #expect(!secret.issues.description.contains("s3cr3t-value"))
    }

    @Test func theKeyTemplateKnowsLastOffsetAndWhetherItReadsTheMessage() throws {
        let plain = try S3KeyTemplate("{{ channel }}/{{ partition }}/{{ offset }}-{{lastOffset}}.ndjson")
        #expect(!plain.readsMessageContent)
        #expect(
            String(decoding: plain.render(first: S3Bed.message(7, partition: 2), lastOffset: 9), as: UTF8.self) == "orders/2/7-9.ndjson")
        let dated = try S3KeyTemplate("{{ timestamp | date: 'yyyy' }}/{{ offset }}")
        #expect(dated.readsMessageContent)
        #expect(throws: S3KeyTemplateError.self) { try S3KeyTemplate("{{ lastOffset | upper }}") }
        let fallback = try S3KeyTemplate(S3KeyTemplate.defaultSource(format: .raw, compression: .gzip))
        #expect(
            String(decoding: fallback.render(first: S3Bed.message(1, channel: ""), lastOffset: 4), as: UTF8.self) == "none/0/1-4.txt.gz")
    }

    @Test func answersAreClassifiedAsRetriableOrTargetDown() throws {
        let endpoint = S3Endpoint(
            endpoint: "http://127.0.0.1:9000", region: "us-east-1", bucket: "archive", pathStyle: true, connectTimeoutMillis: 1000,
            stallSeconds: 1)
        let client = try S3Client(
            endpoint: endpoint, credentials: S3Credentials(accessKeyId: "A", secretAccessKey: "B", origin: "the document"), connections: 1,
            label: "test")
        func kind(_ status: Int, _ code: String) -> ErrorKind {
            let body = code.isEmpty ? "" : "<Error><Code>\(code)</Code><Message>m</Message></Error>"
            return client.classify(HTTPResponse(status: status, body: Array(body.utf8), headers: []), operation: "PutObject", key: "k").kind
        }
        #expect(kind(500, "InternalError") == .retriable)
        #expect(kind(503, "SlowDown") == .retriable)
        #expect(kind(429, "") == .retriable)
        #expect(kind(400, "RequestTimeout") == .retriable)
        #expect(kind(403, "SignatureDoesNotMatch") == .targetDown)
        #expect(kind(403, "InvalidAccessKeyId") == .targetDown)
        #expect(kind(403, "AccessDenied") == .targetDown)
        #expect(kind(404, "NoSuchBucket") == .targetDown)
        #expect(kind(404, "NoSuchUpload") == .retriable)
        #expect(kind(301, "PermanentRedirect") == .targetDown)
        let denied = client.classify(
            HTTPResponse(status: 403, body: Array("<Error><Code>AccessDenied</Code></Error>".utf8), headers: []), operation: "PutObject",
            key: "k")
        #expect(
            denied.message.contains("bucket 'archive'") && denied.message.contains("AccessDenied")
                && denied.message.contains("the document"))
        #expect(S3Endpoint.encodePath("a b/ü+=.ndjson") == "a%20b/%C3%BC%2B%3D.ndjson")
        let hosted = S3Endpoint(
            endpoint: "https://s3.eu-west-1.amazonaws.com", region: "eu-west-1", bucket: "archive", pathStyle: false,
            connectTimeoutMillis: 1000, stallSeconds: 1)
        #expect(hosted.url(key: "x/y") == "https://archive.s3.eu-west-1.amazonaws.com/x/y")
    }

    @Test func sha256MatchesKnownVectors() {
        #expect(S3Digest.sha256Hex([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(S3Digest.sha256Hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(
            S3Digest.sha256Hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    @Test func sharedCredentialsFilesAreParsedByProfile() {
        let text =
            "[default]\naws_access_key_id=A\naws_secret_access_key = B\n\n[profile other]\naws_access_key_id = C\naws_secret_access_key = D\naws_session_token = T\n"
        #expect(S3Credentials.parseProfile(text, profile: "default") == ["aws_access_key_id": "A", "aws_secret_access_key": "B"])
        #expect(S3Credentials.parseProfile(text, profile: "other")["aws_session_token"] == "T")
    }

    @Test func credentialsComeFromTheDocumentThenTheEnvironment() throws {
        let document = try S3Credentials.resolve(
            .init(accessKeyId: "DOC", secretAccessKey: "x"), environment: ["AWS_ACCESS_KEY_ID": "ENV", "AWS_SECRET_ACCESS_KEY": "y"])
        #expect(document.accessKeyId == "DOC")
        let environment = try S3Credentials.resolve(
            .init(), environment: ["AWS_ACCESS_KEY_ID": "ENV", "AWS_SECRET_ACCESS_KEY": "y", "AWS_SESSION_TOKEN": "tok"])
        #expect(environment.accessKeyId == "ENV")
        #expect(environment.sessionToken == "tok")
        #expect(throws: ConnectorError.self) { try S3Credentials.resolve(.init(), environment: ["HOME": "/nonexistent-home"]) }
    }
}
