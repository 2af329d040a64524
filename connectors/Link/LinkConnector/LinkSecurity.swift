#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import GRPCNIOTransportHTTP2
import SwitchyardCore

/// Reads a whole file; `nil` when it cannot be opened or read. Used when a connector is built
/// (certificates, keys, token files are small and read once), never on a hot path.
func readWholeFile(_ path: String) -> [UInt8]? {
    guard let file = fopen(path, "rb") else { return nil }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 16384)
    while true {
        let count = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
        if count > 0 { bytes.append(contentsOf: chunk[0..<count]) }
        if count < chunk.count {
            if ferror(file) != 0 { return nil }
            break
        }
    }
    return bytes
}

/// The PEM files of one end's TLS setup, read when the connector is built so a missing or
/// unreadable file is reported with its option path.
struct LinkTLSFiles: Sendable {
    /// `ca` of a target (the receiver's certificate must chain to it), `clientCa` of a source
    /// (client certificates are required and must chain to it).
    var authority: [UInt8]?
    var certificate: [UInt8]?
    var key: [UInt8]?

    static let fields = ["ca", "clientCa", "cert", "key"]

    /// Reads the files named in `options` (the `tls` object). Throws a `targetDown` error naming
    /// the option path of the first file that cannot be read.
    init(_ options: OptionValues, authorityField: String) throws {
        func load(_ field: String) throws -> [UInt8]? {
            guard let path = options.string(field) else { return nil }
            guard let bytes = readWholeFile(path) else {
                throw ConnectorError.targetDown("\(options.path(of: field)): cannot read \(path)")
            }
            guard bytes.starts(with: Array("-----BEGIN".utf8)) || String(decoding: bytes, as: UTF8.self).contains("-----BEGIN") else {
                throw ConnectorError.targetDown("\(options.path(of: field)): \(path) is not a PEM file")
            }
            return bytes
        }
        authority = try load(authorityField)
        certificate = try load("cert")
        key = try load("key")
    }
}

/// The bearer token of a link end: the `token` option (which may be `${file:...}`) or the
/// contents of `tokenFile`, read when the connector is built, surrounding whitespace removed.
func linkToken(_ options: OptionValues) throws -> String? {
    if let token = options.string("token") {
        return token.trimmingWhitespace
    }
    guard let path = options.string("tokenFile") else { return nil }
    guard let bytes = readWholeFile(path) else {
        throw ConnectorError.targetDown("\(options.path(of: "tokenFile")): cannot read \(path)")
    }
    let token = String(decoding: bytes, as: UTF8.self).trimmingWhitespace
    guard !token.isEmpty else {
        throw ConnectorError.targetDown("\(options.path(of: "tokenFile")): \(path) is empty")
    }
    return token
}

/// Compares two tokens in time independent of where they differ.
func tokensEqual(_ a: String, _ b: String) -> Bool {
    let x = Array(a.utf8), y = Array(b.utf8)
    var difference = UInt8(x.count == y.count ? 0 : 1)
    for index in 0..<max(x.count, y.count) {
        difference |= (index < x.count ? x[index] : 0) ^ (index < y.count ? y[index] : 0)
    }
    return difference == 0
}

extension String {
    var trimmingWhitespace: String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
            let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })
        else { return "" }
        return String(scalars[first...last])
    }
}

/// Option checks shared by both ends: `cert` and `key` go together, `token` and `tokenFile`
/// exclude each other (the schema says so too), an empty token is refused.
func validateLinkSecurity(_ options: OptionValues, role: ConnectorRole) -> [ConfigIssue] {
    var issues: [ConfigIssue] = []
    if let token = options.string("token"), token.trimmingWhitespace.isEmpty {
        issues.append(options.issue("token", "must not be empty"))
    }
    if let tls = options.object("tls") {
        let hasCert = tls.has("cert"), hasKey = tls.has("key")
        if hasCert != hasKey {
            issues.append(tls.issue(hasCert ? "key" : "cert", "cert and key go together: set both or neither"))
        }
        if role == .source && !hasCert {
            issues.append(tls.issue("cert", "a link source with tls needs its server certificate (cert and key)"))
        }
    }
    return issues
}
