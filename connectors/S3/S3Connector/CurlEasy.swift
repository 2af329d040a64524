import CCurl

/// Process-wide libcurl set-up.
enum S3Curl {
    /// `curl_global_init`, run once before the first handle (Swift runs a global's
    /// initialiser exactly once, thread-safely).
    static let initialized: Bool = curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK

    static var version: String {
        guard let text = curl_version() else { return "unknown" }
        return String(String(cString: text).prefix { $0 != " " })
    }
}

/// An HTTP request as the S3 client sends it.
struct HTTPRequest: Sendable {
    var method: String
    var url: String
    /// `Name: value` lines, besides the signing headers curl adds.
    var headers: [String]
    var body: [UInt8]
}

/// An HTTP answer.
struct HTTPResponse: Sendable {
    var status: Int
    var body: [UInt8]
    var headers: [(name: String, value: String)]

    func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first { $0.name.lowercased() == lower }?.value
    }

    var text: String { String(decoding: body, as: UTF8.self) }
}

/// A transfer that failed below HTTP (connection, timeout, TLS).
struct CurlFailure: Error, Sendable {
    var code: UInt32
    var message: String

    /// Whether retrying may help: a malformed URL or an unsupported protocol will not.
    var isRetriable: Bool {
        switch CURLcode(code) {
        case CURLE_URL_MALFORMAT, CURLE_UNSUPPORTED_PROTOCOL, CURLE_NOT_BUILT_IN, CURLE_BAD_FUNCTION_ARGUMENT:
            return false
        default:
            return true
        }
    }
}

/// One curl easy handle, reused across requests so that its connection is kept alive.
///
/// Not thread-safe: the owner (``S3Connection``) uses it on one serial queue only.
final class CurlEasy: @unchecked Sendable {
    private let handle: UnsafeMutableRawPointer

    /// Collects what curl hands to the write and header callbacks.
    private final class Collector {
        var body: [UInt8] = []
        var headers: [(name: String, value: String)] = []
        let bodyLimit = 4 << 20
    }

    init?() {
        guard S3Curl.initialized, let handle = curl_easy_init() else { return nil }
        self.handle = handle
    }

    deinit {
        curl_easy_cleanup(handle)
    }

    struct Settings: Sendable {
        /// `aws:amz:REGION:s3`.
        var sigv4: String
        var accessKeyId: String
        var secretAccessKey: String
        var connectTimeoutMillis: Int
        /// A transfer that moves less than one byte per second for this long fails.
        var stallSeconds: Int
    }

    /// Sends `request` and waits for the whole answer. Blocks the calling thread.
    func perform(_ request: HTTPRequest, _ settings: Settings) throws(CurlFailure) -> HTTPResponse {
        curl_easy_reset(handle)
        let collector = Collector()
        let context = Unmanaged.passRetained(collector)
        defer { context.release() }
        var headerList: UnsafeMutablePointer<curl_slist>?
        defer { curl_slist_free_all(headerList) }
        for line in request.headers {
            headerList = curl_slist_append(headerList, line)
        }
        var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        let code: CURLcode = errorBuffer.withUnsafeMutableBufferPointer { errors in
            sy_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errors.baseAddress)
            sy_setopt_string(handle, CURLOPT_URL, request.url)
            sy_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
            sy_setopt_long(handle, CURLOPT_PATH_AS_IS, 1)
            sy_setopt_long(handle, CURLOPT_TCP_KEEPALIVE, 1)
            sy_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, settings.connectTimeoutMillis)
            sy_setopt_long(handle, CURLOPT_LOW_SPEED_LIMIT, 1)
            sy_setopt_long(handle, CURLOPT_LOW_SPEED_TIME, settings.stallSeconds)
            sy_setopt_string(handle, CURLOPT_AWS_SIGV4, settings.sigv4)
            sy_setopt_string(handle, CURLOPT_USERNAME, settings.accessKeyId)
            sy_setopt_string(handle, CURLOPT_PASSWORD, settings.secretAccessKey)
            sy_setopt_slist(handle, CURLOPT_HTTPHEADER, headerList)
            sy_setopt_pointer(handle, CURLOPT_WRITEDATA, context.toOpaque())
            sy_setopt_write_callback(handle, CURLOPT_WRITEFUNCTION) { data, size, count, user in
                let collector = Unmanaged<Collector>.fromOpaque(user!).takeUnretainedValue()
                let length = size * count
                if let data, collector.body.count < collector.bodyLimit {
                    collector.body.append(contentsOf: UnsafeRawBufferPointer(start: data, count: length))
                }
                return length
            }
            sy_setopt_pointer(handle, CURLOPT_HEADERDATA, context.toOpaque())
            sy_setopt_write_callback(handle, CURLOPT_HEADERFUNCTION) { data, size, count, user in
                let collector = Unmanaged<Collector>.fromOpaque(user!).takeUnretainedValue()
                let length = size * count
                guard let data else { return length }
                let line = String(decoding: UnsafeRawBufferPointer(start: data, count: length), as: UTF8.self)
                if line.hasPrefix("HTTP/") {
                    // A new status line (after 100 Continue or a redirect): forget earlier headers.
                    collector.headers.removeAll()
                } else if let colon = line.firstIndex(of: ":") {
                    let name = String(line[..<colon])
                    let value = S3KeyTemplate.trim(line[line.index(after: colon)...])
                    collector.headers.append((name, value))
                }
                return length
            }
            switch request.method {
            case "GET":
                sy_setopt_long(handle, CURLOPT_HTTPGET, 1)
            case "HEAD":
                sy_setopt_long(handle, CURLOPT_NOBODY, 1)
            default:
                sy_setopt_string(handle, CURLOPT_CUSTOMREQUEST, request.method)
            }
            // The body goes through CURLOPT_POSTFIELDS so that curl's SigV4 hashes the same
            // bytes that x-amz-content-sha256 announces.
            if request.method != "GET" && request.method != "HEAD" {
                return request.body.withUnsafeBytes { body in
                    sy_setopt_offset(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count))
                    if let base = body.baseAddress, body.count > 0 {
                        sy_setopt_pointer(handle, CURLOPT_POSTFIELDS, UnsafeMutableRawPointer(mutating: base))
                    } else {
                        sy_setopt_pointer(handle, CURLOPT_POSTFIELDS, UnsafeMutableRawPointer(mutating: sy_empty_body()))
                    }
                    return curl_easy_perform(handle)
                }
            }
            return curl_easy_perform(handle)
        }
        guard code == CURLE_OK else {
            let detail = errorBuffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            let summary = String(cString: curl_easy_strerror(code))
            throw CurlFailure(code: code.rawValue, message: detail.isEmpty ? summary : "\(summary): \(detail)")
        }
        var status = 0
        sy_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return HTTPResponse(status: status, body: collector.body, headers: collector.headers)
    }
}
