#if canImport(Glibc)
    import Glibc
#endif
import CRabbitMQ

/// A broker address parsed by rabbitmq-c's `amqp_parse_url`: `amqp://user:password@host:port/vhost`
/// or `amqps://...` (TLS; default port 5671). The vhost is percent-decoded (`%2f` is `/`).
struct AMQPURL: Sendable, Equatable {
    var host: String
    var port: Int
    var user: String
    var password: String
    var vhost: String
    var tls: Bool

    /// Parses `text`; the error message never contains the text (it may hold a password).
    static func parse(_ text: String) -> Result<AMQPURL, AMQPError> {
        guard text.hasPrefix("amqp://") || text.hasPrefix("amqps://") else {
            return .failure(AMQPError(kind: .configuration, code: 0, message: "the URL must start with amqp:// or amqps://"))
        }
        guard let buffer = strdup(text) else {
            return .failure(AMQPError(kind: .configuration, code: 0, message: "out of memory"))
        }
        defer { free(buffer) }
        var info = amqp_connection_info()
        amqp_default_connection_info(&info)
        let status = amqp_parse_url(buffer, &info)
        guard status == AMQP_STATUS_OK.rawValue else {
            return .failure(
                AMQPError(
                    kind: .configuration, code: Int(status),
                    message: "the URL is not a valid AMQP URL (amqp://user:password@host:port/vhost)"))
        }
        let host = info.host.map { String(cString: $0) } ?? ""
        guard !host.isEmpty else {
            return .failure(AMQPError(kind: .configuration, code: 0, message: "the URL names no host"))
        }
        return .success(
            AMQPURL(
                host: host, port: Int(info.port),
                user: info.user.map { String(cString: $0) } ?? "guest",
                password: info.password.map { String(cString: $0) } ?? "guest",
                vhost: info.vhost.map { String(cString: $0) } ?? "/",
                tls: info.ssl != 0))
    }

    /// The address without credentials, for logs and errors.
    var redacted: String {
        let vhostPart = vhost == "/" ? "%2f" : vhost
        return "\(tls ? "amqps" : "amqp")://\(user)@\(host):\(port)/\(vhostPart)"
    }
}

/// TLS settings (`tls.ca`, `tls.cert`, `tls.key`, `tls.verify`).
struct AMQPTLS: Sendable, Equatable {
    var ca: String?
    var cert: String?
    var key: String?
    var verify: Bool = true
}

/// Everything needed to open one connection.
struct AMQPConnectionSettings: Sendable {
    var url: AMQPURL
    var tls: AMQPTLS
    /// Seconds; 0 turns heartbeats off.
    var heartbeat: Int
    var connectTimeout: Duration = .seconds(10)
    var rpcTimeout: Duration = .seconds(30)
    /// Shown to the broker as `connection_name` is not settable through amqp_login; used in logs.
    var name: String
}
