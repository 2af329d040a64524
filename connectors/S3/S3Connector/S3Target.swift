import Logging
import Synchronization
import SwitchyardCore

/// The `s3` target: writes each flushed batch as one or more objects.
///
/// A batch is grouped by channel and partition (a lane may merge shards), then split into
/// objects by `maxObjectBytes`, `maxObjectAge` and, when the key template reads the message
/// (a `date` of the timestamp, a header, JSON), wherever the rendered key changes. The key of an
/// object is rendered from its first message with `{{ lastOffset }}` set to the offset of its
/// last one, so a redelivered batch overwrites the same objects. Objects are uploaded in
/// parallel on `connections` curl handles, each on its own serial queue; the batch is confirmed
/// when every object is stored.
final class S3Target: Target {
    static let kind = TargetKind(
        kind: "s3",
        summary:
            "writes each batch as NDJSON or raw objects (optionally gzip) to an S3 bucket; keys from channel, partition and first/last offsets",
        options: ObjectSchema(
            doc: "Writes batches as objects to an S3 bucket (AWS or any S3-compatible endpoint), signed with SigV4.",
            exclusive: [["accessKeyId", "profile"]],
            [
                OptionField("endpoint", .string, doc: "http(s)://host[:port]; absent for AWS (https://s3.REGION.amazonaws.com)"),
                OptionField("region", .string, default: "us-east-1", doc: "signing region"),
                OptionField("bucket", .string, required: true, doc: "bucket name"),
                OptionField(
                    "key", .string,
                    doc:
                        "object key template, rendered with the object's first message; {{ lastOffset }} is the offset of its last message. Default: {{ channel | default: 'none' }}/{{ partition }}/{{ offset }}-{{ lastOffset }}.ndjson (.txt for raw, .gz appended for gzip), with {{ session }}/ before the offsets for messages of a source whose positions restart (rabbitmq, link)"
                ),
                OptionField(
                    "format", .choice(["ndjson", "raw"]), default: "ndjson",
                    doc:
                        "ndjson: one JSON object per message with key, value, headers, channel, partition, offset, timestamp; raw: the values joined by separator"
                ),
                OptionField("separator", .string, doc: "raw format: the bytes between two values; default a newline"),
                OptionField(
                    "compression", .choice(["none", "gzip"]), default: "none", doc: "gzip compresses each object (one gzip member)"),
                OptionField(
                    "contentType", .string,
                    doc:
                        "Content-Type of the objects; default application/x-ndjson (ndjson), application/octet-stream (raw), application/gzip (gzip)"
                ),
                OptionField(
                    "pathStyle", .bool, doc: "path-style addressing (endpoint/bucket/key); default true with an endpoint, false for AWS"),
                OptionField(
                    "maxObjectBytes", .size, default: "64MiB",
                    doc:
                        "an object holds at most this many bytes before compression (a single larger message makes an object of its own); a batch larger than this becomes several objects"
                ),
                OptionField(
                    "maxObjectAge", .duration,
                    doc:
                        "an object never spans messages whose timestamps are further apart than this (the batch is split there). The wall-clock age of an object is bounded by this target's batching.maxDelay: objects are written once per flush"
                ),
                OptionField(
                    "multipartThreshold", .size, default: "64MiB",
                    doc: "objects of at least this size (after compression) are sent as a multipart upload"),
                OptionField("partSize", .size, default: "8MiB", doc: "multipart part size; at least 5MiB (S3's minimum)"),
                OptionField(
                    "accessKeyId", .string,
                    doc:
                        "access key; with secretAccessKey. Absent: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN from the environment, then the shared credentials file"
                ),
                OptionField("secretAccessKey", .secret, doc: "secret key (use ${file:...} or ${env:...})"),
                OptionField("sessionToken", .secret, doc: "session token of temporary credentials (sent as x-amz-security-token)"),
                OptionField(
                    "profile", .string,
                    doc:
                        "profile of the shared credentials file (AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials); default AWS_PROFILE or 'default'"
                ),
                OptionField(
                    "connections", .int(min: 1, max: 64), default: "4",
                    doc: "parallel uploads (one curl handle and thread each, connections kept alive)"),
                OptionField("connectTimeout", .duration, default: "10s", doc: "TCP and TLS connect timeout"),
                OptionField("timeout", .duration, default: "30s", doc: "a request that moves no data for this long fails (retriable)"),
            ]),
        validate: { options in S3Target.validate(options) },
        sessionlessPositionKeys: { options in
            // The default key adds the session where messages carry one; a key of the
            // document's own must name it when it is made from offsets.
            guard let text = options.string("key"), let key = try? S3KeyTemplate(text) else { return [] }
            return key.readsOffsetWithoutSession ? ["key"] : []
        },
        batchesInFlight: 2,
        make: { setup in try S3Target(setup) }
    )

    static func validate(_ options: OptionValues) -> [ConfigIssue] {
        var issues: [ConfigIssue] = []
        let bucket = options.string("bucket") ?? ""
        if bucket.isEmpty {
            issues.append(options.issue("bucket", "must not be empty"))
        } else if bucket.utf8.count < 3 || bucket.utf8.count > 63
            || !bucket.utf8.allSatisfy({ ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 45 || $0 == 46 })
        {
            issues.append(options.issue("bucket", "a bucket name has 3 to 63 characters: lowercase letters, digits, '-' and '.'"))
        }
        if let endpoint = options.string("endpoint"),
            !(endpoint.hasPrefix("http://") || endpoint.hasPrefix("https://")) || endpoint.count < 10
        {
            issues.append(options.issue("endpoint", "expected http://host[:port] or https://host[:port]"))
        }
        if let key = options.string("key") {
            if key.isEmpty {
                issues.append(options.issue("key", "must not be empty"))
            } else {
                do { _ = try S3KeyTemplate(key) } catch { issues.append(options.issue("key", "\(error)")) }
            }
        }
        if options.explicit.contains("separator") && options.string("format") != "raw" {
            issues.append(options.issue("separator", "applies to format: raw only"))
        }
        if options.has("accessKeyId") != options.has("secretAccessKey") {
            issues.append(
                options.issue(
                    options.has("accessKeyId") ? "secretAccessKey" : "accessKeyId", "accessKeyId and secretAccessKey are set together"))
        }
        if options.has("sessionToken") && !options.has("accessKeyId") {
            issues.append(
                options.issue(
                    "sessionToken", "needs accessKeyId and secretAccessKey (a token from the environment comes with AWS_SESSION_TOKEN)"))
        }
        let partSize = options.size("partSize") ?? 0
        if partSize < 5 << 20 {
            issues.append(options.issue("partSize", "must be at least 5MiB (S3 refuses smaller parts)"))
        }
        if partSize > 5 << 30 {
            issues.append(options.issue("partSize", "must be at most 5GiB"))
        }
        if (options.size("multipartThreshold") ?? 0) < 5 << 20 {
            issues.append(options.issue("multipartThreshold", "must be at least 5MiB"))
        }
        let maxObject = options.size("maxObjectBytes") ?? 0
        if maxObject < 1 || maxObject > 2 << 30 {
            issues.append(options.issue("maxObjectBytes", "must be between 1 byte and 2GiB"))
        }
        if let age = options.duration("maxObjectAge"), age < .milliseconds(1) {
            issues.append(options.issue("maxObjectAge", "must be at least 1ms"))
        }
        return issues
    }

    let name: String
    let logger: Logger
    let endpoint: S3Endpoint
    let credentialSettings: S3Credentials.Settings
    let keyTemplate: S3KeyTemplate
    /// With the default key: the key for messages whose positions belong to a session (a
    /// RabbitMQ connection, a link sender), which adds the session to the default layout.
    /// Nil with a key of the document's own.
    let sessionKeyTemplate: S3KeyTemplate?
    let encoder: S3Encoder
    let compression: S3Compression
    let contentType: String
    let maxObjectBytes: Int
    let maxObjectAgeMillis: Int64?
    let multipartThreshold: Int
    let partSize: Int
    let connectionCount: Int
    let client = Mutex<S3Client?>(nil)
    let state = Mutex<ConnectorHealth>(.connecting)

    init(_ setup: ConnectorSetup) throws {
        let options = setup.options
        name = setup.name
        logger = setup.logger
        endpoint = Self.endpoint(options)
        credentialSettings = Self.credentialSettings(options)
        let format = S3Format(rawValue: options.string("format") ?? "ndjson") ?? .ndjson
        compression = S3Compression(rawValue: options.string("compression") ?? "none") ?? .none
        if let key = options.string("key") {
            keyTemplate = try S3KeyTemplate(key)
            sessionKeyTemplate = nil
        } else {
            keyTemplate = try S3KeyTemplate(S3KeyTemplate.defaultSource(format: format, compression: compression))
            sessionKeyTemplate = try S3KeyTemplate(S3KeyTemplate.defaultSource(format: format, compression: compression, session: true))
        }
        encoder = S3Encoder(format: format, separator: Array((options.string("separator") ?? "\n").utf8))
        contentType =
            options.string("contentType")
            ?? (compression == .gzip ? "application/gzip" : format == .ndjson ? "application/x-ndjson" : "application/octet-stream")
        maxObjectBytes = options.size("maxObjectBytes") ?? 64 << 20
        maxObjectAgeMillis = options.duration("maxObjectAge").map(Self.millis)
        multipartThreshold = options.size("multipartThreshold") ?? 64 << 20
        partSize = options.size("partSize") ?? 8 << 20
        connectionCount = options.int("connections") ?? 4
    }

    /// Where the options say the bucket is.
    static func endpoint(_ options: OptionValues) -> S3Endpoint {
        let region = options.string("region") ?? "us-east-1"
        var endpointText = options.string("endpoint") ?? "https://s3.\(region).amazonaws.com"
        while endpointText.hasSuffix("/") { endpointText.removeLast() }
        let duration = { (name: String, fallback: Duration) -> Duration in options.duration(name) ?? fallback }
        return S3Endpoint(
            endpoint: endpointText, region: region, bucket: options.string("bucket") ?? "",
            pathStyle: options.bool("pathStyle") ?? options.has("endpoint"),
            connectTimeoutMillis: Int(Self.millis(duration("connectTimeout", .seconds(10)))),
            stallSeconds: Int(max(1, Self.millis(duration("timeout", .seconds(30))) / 1000)))
    }

    static func credentialSettings(_ options: OptionValues) -> S3Credentials.Settings {
        .init(
            accessKeyId: options.string("accessKeyId"), secretAccessKey: options.string("secretAccessKey"),
            sessionToken: options.string("sessionToken"), profile: options.string("profile"))
    }

    static func millis(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
    }

    var health: ConnectorHealth { state.withLock { $0 } }

    /// Resolves credentials (the environment is read now), creates the connections and checks
    /// the bucket with a HEAD request.
    func open() async throws {
        do {
            let credentials = try S3Credentials.resolve(credentialSettings, environment: S3Credentials.processEnvironment())
            let client = try S3Client(
                endpoint: endpoint, credentials: credentials, connections: connectionCount, label: "switchyard.s3.\(name)")
            try await client.run { connection in try client.checkBucket(connection) }
            self.client.withLock { $0 = client }
            state.withLock { $0 = .up }
            logger.info(
                "s3 target connected",
                metadata: ["target": "\(name)", "bucket": "\(endpoint.bucket)", "credentials": "\(credentials.origin)"])
        } catch let error as ConnectorError {
            state.withLock { $0 = .down(error.message) }
            throw error
        }
    }

    func close() async {
        client.withLock { $0 = nil }
        state.withLock { $0 = .connecting }
    }

    /// One object to write: the batch positions it holds, its key and its content.
    struct PlannedObject: Sendable {
        var indices: [Int]
        var key: String
        var body: [UInt8]
    }

    func write(_ messages: [Message]) async throws -> WriteResult {
        try await start(messages).result()
    }

    /// Encodes the batch into objects now, on the lane's task, and returns the upload to await:
    /// the lane encodes its next batch while this one's objects are sent (`inFlight`). Objects
    /// have keys of their own, so the order in which two batches' objects are stored does not
    /// matter.
    func start(_ messages: [Message]) async throws -> PendingWrite {
        let client: S3Client
        if let current = self.client.withLock({ $0 }) {
            client = current
        } else {
            // After a target-down error: resolve the credentials again and check the bucket.
            try await open()
            guard let opened = self.client.withLock({ $0 }) else { throw ConnectorError.retriable("s3 target \(name) is not connected") }
            client = opened
        }
        let (objects, rejected) = plan(messages)
        return PendingWrite { [self] in try await upload(objects, rejected: rejected, client: client) }
    }

    /// Uploads a batch's objects in parallel (bounded by the connections) and maps what failed
    /// back to the batch's messages.
    func upload(_ objects: [PlannedObject], rejected: [(index: Int, error: ConnectorError)], client: S3Client) async throws -> WriteResult {
        let compression = self.compression
        let contentType = self.contentType
        let multipartThreshold = self.multipartThreshold
        let partSize = self.partSize
        // Upload every object in parallel (bounded by the connections); collect failures.
        let failures = await withTaskGroup(of: (Int, ConnectorError?).self) { group in
            for (number, object) in objects.enumerated() {
                group.addTask {
                    do {
                        try await client.run { connection in
                            let body = compression == .gzip ? try S3Digest.gzip(object.body) : object.body
                            if body.count >= multipartThreshold {
                                try client.multipartUpload(
                                    connection, key: object.key, body: body, partSize: partSize, contentType: contentType)
                            } else {
                                try client.putObject(connection, key: object.key, body: body, contentType: contentType)
                            }
                        }
                        return (number, nil)
                    } catch let error as ConnectorError {
                        return (number, error)
                    } catch {
                        return (number, ConnectorError.retriable("\(error)"))
                    }
                }
            }
            var failures: [(Int, ConnectorError)] = []
            for await (number, error) in group {
                if let error { failures.append((number, error)) }
            }
            return failures
        }
        if let down = failures.first(where: { $0.1.kind == .targetDown }) {
            // The whole batch is retried when the target recovers; stored objects are
            // overwritten with the same content under the same keys.
            state.withLock { $0 = .down(down.1.message) }
            self.client.withLock { $0 = nil }
            throw down.1
        }
        state.withLock { $0 = .up }
        if failures.isEmpty && rejected.isEmpty { return .allWritten }
        if !objects.isEmpty && failures.count == objects.count && rejected.isEmpty {
            throw failures[0].1
        }
        var result: [(index: Int, error: ConnectorError)] = rejected
        for (number, error) in failures {
            for index in objects[number].indices { result.append((index, error)) }
        }
        result.sort { $0.index < $1.index }
        return WriteResult(failures: result)
    }

    /// Groups, splits and encodes a batch into objects. Messages whose key renders empty or
    /// longer than S3's 1024 bytes are rejected (permanent: they go to the dead-letter target).
    func plan(_ messages: [Message]) -> (objects: [PlannedObject], rejected: [(index: Int, error: ConnectorError)]) {
        // Group by channel, partition and session, keeping the order of first appearance.
        struct Shard: Hashable {
            var channel: String
            var partition: Int32
            var session: UInt64
        }
        var order: [Shard] = []
        var groups: [Shard: [Int]] = [:]
        for (index, message) in messages.enumerated() {
            let shard = Shard(channel: message.channel, partition: message.partition, session: message.session)
            if groups[shard] == nil { order.append(shard) }
            groups[shard, default: []].append(index)
        }
        var objects: [PlannedObject] = []
        var rejected: [(index: Int, error: ConnectorError)] = []
        for shard in order {
            let keyTemplate = shard.session != 0 ? sessionKeyTemplate ?? keyTemplate : keyTemplate
            var indices: [Int] = []
            var body: [UInt8] = []
            var groupKey: [UInt8] = []
            func finish() {
                guard let firstIndex = indices.first, let lastIndex = indices.last else { return }
                let key = keyTemplate.render(first: messages[firstIndex], lastOffset: messages[lastIndex].offset)
                if key.isEmpty || key.count > 1024 {
                    let error = ConnectorError.permanent(
                        "the key template '\(keyTemplate.source)' renders \(key.isEmpty ? "an empty key" : "a key of \(key.count) bytes (S3 allows 1024)")"
                    )
                    for index in indices { rejected.append((index, error)) }
                } else {
                    objects.append(PlannedObject(indices: indices, key: String(decoding: key, as: UTF8.self), body: body))
                }
                indices = []
                body = []
            }
            let between = encoder.between
            var piece: [UInt8] = []
            for index in groups[shard] ?? [] {
                let message = messages[index]
                piece.removeAll(keepingCapacity: true)
                encoder.encode(message, into: &piece)
                if let firstIndex = indices.first {
                    let first = messages[firstIndex]
                    var split = body.count + between.count + piece.count > maxObjectBytes
                    if !split, let age = maxObjectAgeMillis, message.timestamp - first.timestamp > age {
                        split = true
                    }
                    if !split && keyTemplate.readsMessageContent {
                        var probe = message
                        probe.offset = first.offset
                        split = keyTemplate.render(first: probe, lastOffset: 0) != groupKey
                    }
                    if split { finish() }
                }
                if indices.isEmpty {
                    if keyTemplate.readsMessageContent { groupKey = keyTemplate.render(first: message, lastOffset: 0) }
                } else {
                    body.append(contentsOf: between)
                }
                body.append(contentsOf: piece)
                indices.append(index)
            }
            finish()
        }
        rejected.sort { $0.index < $1.index }
        return (objects, rejected)
    }
}
