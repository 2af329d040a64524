import SwitchyardCore

/// Reads back what an `s3` target wrote, for `switchyard reconcile`: lists the objects under a
/// prefix (ListObjectsV2, a page of up to 1,000 keys at a time) and fetches them one at a time,
/// decompressing gzip. Memory: one object and one page of keys. Blocking: callers run it on a
/// thread of their own, never on the cooperative pool.
public final class S3BucketReader: Sendable {
    public let bucket: String
    public let endpoint: String
    /// `ndjson` or `raw`: only NDJSON objects carry the positions reconciliation needs.
    public let format: String
    /// The largest decompressed object accepted: the target's `maxObjectBytes` plus room for the
    /// one message that may exceed it.
    public let objectLimit: Int
    let client: S3Client
    let connection: S3Connection
    let keyTemplate: S3KeyTemplate

    /// - Parameter options: the validated options of an `s3` target.
    public init(target options: OptionValues) throws(ConnectorError) {
        let endpoint = S3Target.endpoint(options)
        let credentials = try S3Credentials.resolve(S3Target.credentialSettings(options), environment: S3Credentials.processEnvironment())
        client = try S3Client(endpoint: endpoint, credentials: credentials, connections: 1, label: "switchyard.s3.reader")
        connection = client.connections[0]
        bucket = endpoint.bucket
        self.endpoint = endpoint.endpoint
        let format = S3Format(rawValue: options.string("format") ?? "ndjson") ?? .ndjson
        let compression = S3Compression(rawValue: options.string("compression") ?? "none") ?? .none
        self.format = format.rawValue
        do {
            keyTemplate = try S3KeyTemplate(options.string("key") ?? S3KeyTemplate.defaultSource(format: format, compression: compression))
        } catch {
            throw ConnectorError.targetDown("key: \(error)")
        }
        objectLimit = (options.size("maxObjectBytes") ?? 64 << 20) + (64 << 20)
    }

    /// Where the objects of `channel` are: the part of the key that two very different
    /// messages of that channel share, up to its last `/` (empty: the whole bucket).
    public func prefix(channel: String) -> String {
        let first = Message(key: [0x61], value: Array("{}".utf8), channel: channel, timestamp: 0, partition: 0, offset: 0, session: 1)
        let second = Message(
            key: [0x62], value: Array("[1]".utf8), channel: channel, timestamp: 4_102_444_800_000, partition: 9, offset: 99_999, session: 2)
        let a = keyTemplate.render(first: first, lastOffset: 0)
        let b = keyTemplate.render(first: second, lastOffset: 99_999)
        var common = 0
        while common < a.count && common < b.count && a[common] == b[common] { common += 1 }
        guard let slash = a[..<common].lastIndex(of: UInt8(ascii: "/")) else { return "" }
        return String(decoding: a[...slash], as: UTF8.self)
    }

    /// Calls `body` with the key and the content (decompressed when it is gzip) of every object
    /// under `prefix`, in the order S3 lists them.
    public func forEachObject(prefix: String, _ body: (String, [UInt8]) throws -> Void) throws {
        var token: String?
        repeat {
            // SigV4 signs the query sorted by name.
            var query = ""
            if let token { query += "continuation-token=\(S3Endpoint.encode(token))&" }
            query += "list-type=2&prefix=\(S3Endpoint.encode(prefix))"
            let page = try client.send(connection, method: "GET", key: "", query: query, operation: "ListObjectsV2")
            let text = page.text
            for key in Self.elements("Key", in: text) {
                let object = try client.send(connection, method: "GET", key: key, operation: "GetObject")
                try body(key, try decompress(object.body, key: key))
            }
            token = Self.xmlElement("IsTruncated", in: text) == "true" ? Self.elements("NextContinuationToken", in: text).first : nil
        } while token != nil
    }

    /// The content as written: gzip (by its magic bytes) is decompressed.
    func decompress(_ body: [UInt8], key: String) throws(ConnectorError) -> [UInt8] {
        guard body.count >= 2, body[0] == 0x1F, body[1] == 0x8B else { return body }
        switch S3Digest.gunzip(body, limit: objectLimit) {
        case .success(let bytes):
            return bytes
        case .failure(let failure):
            let reason =
                failure.oversized ? "decompresses to more than \(objectLimit) bytes" : "is not valid gzip (zlib error \(failure.code))"
            throw ConnectorError.targetDown("s3://\(bucket)/\(key) \(reason)")
        }
    }

    static func xmlElement(_ name: String, in text: String) -> String? {
        S3Client.xmlElement(name, in: text).map(unescape)
    }

    /// Every `<name>...</name>` in order, with XML entities replaced.
    static func elements(_ name: String, in text: String) -> [String] {
        var found: [String] = []
        var rest = text[...]
        while let open = rest.firstRange(of: "<\(name)>"), let close = rest[open.upperBound...].firstRange(of: "</\(name)>") {
            found.append(unescape(String(rest[open.upperBound..<close.lowerBound])))
            rest = rest[close.upperBound...]
        }
        return found
    }

    static func unescape(_ text: String) -> String {
        guard text.contains("&") else { return text }
        var output = ""
        var rest = text[...]
        while let amp = rest.firstIndex(of: "&") {
            output += rest[..<amp]
            guard let semicolon = rest[amp...].firstIndex(of: ";") else { break }
            let entity = rest[rest.index(after: amp)..<semicolon]
            switch entity {
            case "amp": output += "&"
            case "lt": output += "<"
            case "gt": output += ">"
            case "quot": output += "\""
            case "apos": output += "'"
            default:
                var number: UInt32?
                if entity.hasPrefix("#x") {
                    number = UInt32(entity.dropFirst(2), radix: 16)
                } else if entity.hasPrefix("#") {
                    number = UInt32(entity.dropFirst())
                }
                if let number, let scalar = Unicode.Scalar(number) { output.unicodeScalars.append(scalar) } else { output += "&\(entity);" }
            }
            rest = rest[rest.index(after: semicolon)...]
        }
        return output + rest
    }
}
