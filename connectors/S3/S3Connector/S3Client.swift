import Synchronization
import SwitchyardCore

/// Where and how to reach the bucket.
struct S3Endpoint: Sendable {
    /// `http://host:port` or `https://host`, without a trailing slash.
    var endpoint: String
    var region: String
    var bucket: String
    /// Path-style (`endpoint/bucket/key`) or virtual-hosted (`bucket.host/key`) addressing.
    var pathStyle: Bool
    var connectTimeoutMillis: Int
    var stallSeconds: Int

    /// The URL of `key` in the bucket (the bucket itself for an empty key), with `query`.
    func url(key: String, query: String = "") -> String {
        let encoded = Self.encodePath(key)
        var url: String
        if pathStyle {
            url = "\(endpoint)/\(bucket)/\(encoded)"
        } else {
            let schemeEnd = endpoint.firstRange(of: "://").map(\.upperBound) ?? endpoint.startIndex
            url = "\(endpoint[..<schemeEnd])\(bucket).\(endpoint[schemeEnd...])/\(encoded)"
        }
        if !query.isEmpty { url += "?" + query }
        return url
    }

    /// Percent-encodes everything but the RFC 3986 unreserved characters and `/`, as SigV4's
    /// canonical URI for S3 expects.
    static func encodePath(_ key: String) -> String {
        encode(key, keepSlash: true)
    }

    static let upperHex = Array("0123456789ABCDEF".utf8)

    static func encode(_ text: String, keepSlash: Bool = false) -> String {
        var output = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."),
                UInt8(ascii: "_"), UInt8(ascii: "~"):
                output.unicodeScalars.append(Unicode.Scalar(byte))
            case UInt8(ascii: "/") where keepSlash:
                output.append("/")
            default:
                output.append("%")
                output.unicodeScalars.append(Unicode.Scalar(upperHex[Int(byte >> 4)]))
                output.unicodeScalars.append(Unicode.Scalar(upperHex[Int(byte & 0xF)]))
            }
        }
        return output
    }
}

/// One connection to S3: a curl easy handle used on its own serial queue.
final class S3Connection: Sendable {
    let queue: BlockingQueue
    let easy: CurlEasy

    init(label: String) throws(ConnectorError) {
        guard let easy = CurlEasy() else { throw ConnectorError.retriable("libcurl could not create a handle") }
        self.easy = easy
        queue = BlockingQueue(label: label)
    }
}

/// Signs and sends S3 requests on a small pool of connections and turns answers into
/// ``ConnectorError``s of the right kind.
final class S3Client: Sendable {
    let endpoint: S3Endpoint
    let credentials: S3Credentials
    let connections: [S3Connection]
    let next = Atomic<Int>(0)
    let settings: CurlEasy.Settings

    init(endpoint: S3Endpoint, credentials: S3Credentials, connections count: Int, label: String) throws(ConnectorError) {
        self.endpoint = endpoint
        self.credentials = credentials
        var connections: [S3Connection] = []
        for i in 0..<max(1, count) { connections.append(try S3Connection(label: "\(label).\(i)")) }
        self.connections = connections
        settings = CurlEasy.Settings(
            sigv4: "aws:amz:\(endpoint.region):s3", accessKeyId: credentials.accessKeyId,
            secretAccessKey: credentials.secretAccessKey,
            connectTimeoutMillis: endpoint.connectTimeoutMillis, stallSeconds: max(1, endpoint.stallSeconds))
    }

    /// The next connection, round robin.
    func connection() -> S3Connection {
        connections[Int(UInt(bitPattern: next.wrappingAdd(1, ordering: .relaxed).oldValue) % UInt(connections.count))]
    }

    /// Runs `work` on a connection's queue.
    func run<T: Sendable>(_ work: @escaping @Sendable (S3Connection) throws -> T) async throws -> T {
        let connection = connection()
        return try await connection.queue.run { try work(connection) }
    }

    // MARK: requests (blocking; called on a connection's queue)

    /// Sends one signed request; classifies transport failures and non-2xx answers.
    func send(
        _ connection: S3Connection, method: String, key: String, query: String = "", body: [UInt8] = [], contentType: String? = nil,
        operation: String
    ) throws(ConnectorError) -> HTTPResponse {
        var headers = ["x-amz-content-sha256: \(S3Digest.sha256Hex(body))"]
        if let contentType { headers.append("Content-Type: \(contentType)") }
        if let token = credentials.sessionToken { headers.append("x-amz-security-token: \(token)") }
        let request = HTTPRequest(method: method, url: endpoint.url(key: key, query: query), headers: headers, body: body)
        let response: HTTPResponse
        do {
            response = try connection.easy.perform(request, settings)
        } catch {
            let message = "\(operation) on bucket '\(endpoint.bucket)' at \(endpoint.endpoint) failed: \(error.message)"
            throw error.isRetriable ? ConnectorError.retriable(message) : ConnectorError.targetDown(message)
        }
        if (200..<300).contains(response.status) { return response }
        throw classify(response, operation: operation, key: key)
    }

    /// The kind of a failed answer (ARCHITECTURE.md section 3, item 5): throttling, 5xx and
    /// request timeouts are retriable; authentication, a missing bucket and other client
    /// errors pause the target.
    func classify(_ response: HTTPResponse, operation: String, key: String) -> ConnectorError {
        let code = Self.xmlElement("Code", in: response.text) ?? ""
        let detail = Self.xmlElement("Message", in: response.text) ?? ""
        let bucket = endpoint.bucket
        let what = "\(operation) of s3://\(bucket)/\(key)"
        let reason = ([code, detail].filter { !$0.isEmpty }.joined(separator: ": "))
        let described = "HTTP \(response.status)" + (reason.isEmpty ? "" : " \(reason)")
        switch response.status {
        case 500...599, 429:
            return .retriable("\(what) failed with \(described)")
        case 404 where code == "NoSuchBucket" || (code.isEmpty && key.isEmpty):
            return .targetDown("bucket '\(bucket)' does not exist at \(endpoint.endpoint) (\(described))")
        case 404 where code == "NoSuchUpload":
            return .retriable("\(what) failed with \(described); the object is uploaded again")
        case 401, 403:
            return .targetDown("access to bucket '\(bucket)' denied with the key from \(credentials.origin) (\(described))")
        case 400 where code == "RequestTimeout" || code == "SlowDown":
            return .retriable("\(what) failed with \(described)")
        default:
            return .targetDown("\(what) failed with \(described)")
        }
    }

    /// The text of the first `<name>...</name>` in an S3 XML answer.
    static func xmlElement(_ name: String, in text: String) -> String? {
        guard let open = text.firstRange(of: "<\(name)>"),
            let close = text[open.upperBound...].firstRange(of: "</\(name)>")
        else { return nil }
        return String(text[open.upperBound..<close.lowerBound])
    }

    /// HEAD on the bucket: proves the endpoint, the credentials and the bucket.
    func checkBucket(_ connection: S3Connection) throws(ConnectorError) {
        _ = try send(connection, method: "HEAD", key: "", operation: "HeadBucket")
    }

    /// PUT of one object.
    func putObject(_ connection: S3Connection, key: String, body: [UInt8], contentType: String) throws(ConnectorError) {
        _ = try send(connection, method: "PUT", key: key, body: body, contentType: contentType, operation: "PutObject")
    }

    /// Multipart upload of one object in parts of `partSize` bytes (the last may be smaller);
    /// aborted on failure.
    func multipartUpload(_ connection: S3Connection, key: String, body: [UInt8], partSize: Int, contentType: String) throws(ConnectorError)
    {
        let created = try send(
            connection, method: "POST", key: key, query: "uploads=", contentType: contentType, operation: "CreateMultipartUpload")
        guard let uploadId = Self.xmlElement("UploadId", in: created.text), !uploadId.isEmpty else {
            throw ConnectorError.retriable("CreateMultipartUpload of s3://\(endpoint.bucket)/\(key) returned no UploadId")
        }
        let idQuery = "uploadId=" + S3Endpoint.encode(uploadId)
        do throws(ConnectorError) {
            var etags: [String] = []
            var start = 0
            var number = 1
            while start < body.count {
                let end = min(body.count, start + partSize)
                let part = Array(body[start..<end])
                let answer = try send(
                    connection, method: "PUT", key: key, query: "partNumber=\(number)&\(idQuery)", body: part,
                    contentType: "application/octet-stream", operation: "UploadPart \(number)")
                guard let etag = answer.header("ETag") else {
                    throw ConnectorError.retriable("UploadPart \(number) of s3://\(endpoint.bucket)/\(key) returned no ETag")
                }
                etags.append(etag)
                start = end
                number += 1
            }
            var xml = "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
            for (i, etag) in etags.enumerated() {
                let quoted = etag.hasPrefix("\"") ? etag : "\"\(etag)\""
                xml += "<Part><PartNumber>\(i + 1)</PartNumber><ETag>\(quoted.replacing("\"", with: "&quot;"))</ETag></Part>"
            }
            xml += "</CompleteMultipartUpload>"
            let completed = try send(
                connection, method: "POST", key: key, query: idQuery, body: Array(xml.utf8), contentType: "application/xml",
                operation: "CompleteMultipartUpload")
            // S3 may answer 200 and report the failure in the body.
            if completed.text.contains("<Error>") {
                let code = Self.xmlElement("Code", in: completed.text) ?? "unknown"
                throw ConnectorError.retriable("CompleteMultipartUpload of s3://\(endpoint.bucket)/\(key) failed: \(code)")
            }
        } catch {
            _ = try? send(connection, method: "DELETE", key: key, query: idQuery, operation: "AbortMultipartUpload")
            throw error
        }
    }
}
