/// Where and how to reach a Redis server, parsed from `redis://[user[:password]@]host[:port][/db]`.
struct RedisAddress: Sendable, Equatable {
    var host: String
    var port: Int
    var database: Int
    var username: String?
    var password: String?

    /// Parses `text`; the error message never repeats the text (it may hold a password).
    static func parse(_ text: String) -> Result<RedisAddress, RedisAddressError> {
        let lower = text.lowercased()
        if lower.hasPrefix("rediss://") {
            return .failure(
                .init(
                    "rediss:// (TLS) is not supported: hiredis 0.14 has no TLS; use redis:// on a trusted network or a TLS tunnel (stunnel, a service mesh sidecar)"
                ))
        }
        guard lower.hasPrefix("redis://") else {
            return .failure(.init("expected a URL of the form redis://[user[:password]@]host[:port][/db]"))
        }
        var rest = Substring(text.dropFirst("redis://".count))
        var address = RedisAddress(host: "", port: 6379, database: 0)
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = credentials.firstIndex(of: ":") {
                let user = credentials[..<colon]
                guard let username = percentDecode(user), let password = percentDecode(credentials[credentials.index(after: colon)...])
                else {
                    return .failure(.init("the credentials hold a malformed percent escape"))
                }
                address.username = username.isEmpty ? nil : username
                address.password = password
            } else {
                guard let username = percentDecode(credentials) else {
                    return .failure(.init("the user name holds a malformed percent escape"))
                }
                address.username = username.isEmpty ? nil : username
            }
        }
        if rest.contains("?") {
            return .failure(.init("query parameters (after '?') are not supported in a redis URL"))
        }
        var hostPort = rest
        if let slash = rest.firstIndex(of: "/") {
            hostPort = rest[..<slash]
            let db = rest[rest.index(after: slash)...]
            if !db.isEmpty {
                guard let number = Int(db), number >= 0 else {
                    return .failure(.init("the database after '/' must be a number such as 0"))
                }
                address.database = number
            }
        }
        if hostPort.hasPrefix("[") {
            guard let close = hostPort.firstIndex(of: "]") else { return .failure(.init("an IPv6 address in [ ] is not closed")) }
            address.host = String(hostPort[hostPort.index(after: hostPort.startIndex)..<close])
            hostPort = hostPort[hostPort.index(after: close)...]
            if !hostPort.isEmpty {
                guard hostPort.first == ":", let port = Int(hostPort.dropFirst()), (1...65535).contains(port) else {
                    return .failure(.init("the port must be a number from 1 to 65535"))
                }
                address.port = port
            }
        } else if let colon = hostPort.lastIndex(of: ":") {
            address.host = String(hostPort[..<colon])
            guard let port = Int(hostPort[hostPort.index(after: colon)...]), (1...65535).contains(port) else {
                return .failure(.init("the port must be a number from 1 to 65535"))
            }
            address.port = port
        } else {
            address.host = String(hostPort)
        }
        guard !address.host.isEmpty else { return .failure(.init("the URL names no host")) }
        return .success(address)
    }

    static func percentDecode(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%") {
                guard let high = iterator.next(), let low = iterator.next(),
                    let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16)
                else { return nil }
                bytes.append(value)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `host:port/db` without credentials, for logs and error messages.
    var display: String {
        let shownHost = host.contains(":") ? "[\(host)]" : host
        return "\(shownHost):\(port)/\(database)"
    }
}

struct RedisAddressError: Error, Sendable, Equatable {
    var message: String
    init(_ message: String) { self.message = message }
}
