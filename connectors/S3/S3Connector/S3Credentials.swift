#if canImport(Glibc)
    import Glibc
#endif
import SwitchyardCore

/// An AWS access key, with an optional session token, and where it came from.
struct S3Credentials: Sendable {
    var accessKeyId: String
    var secretAccessKey: String
    var sessionToken: String?
    /// Where the key was found, for messages (never the key itself).
    var origin: String

    /// What the document says about credentials.
    struct Settings: Sendable {
        var accessKeyId: String?
        var secretAccessKey: String?
        var sessionToken: String?
        var profile: String?
    }

    /// Resolves credentials in order: the document, the environment (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), then the shared credentials file
    /// (`AWS_SHARED_CREDENTIALS_FILE` or `~/.aws/credentials`, profile from the document,
    /// `AWS_PROFILE`, or `default`). Throws `targetDown` when none is found.
    static func resolve(_ settings: Settings, environment: [String: String]) throws(ConnectorError) -> S3Credentials {
        if let id = settings.accessKeyId, let secret = settings.secretAccessKey, settings.profile == nil {
            return S3Credentials(
                accessKeyId: id, secretAccessKey: secret, sessionToken: settings.sessionToken.flatMap { $0.isEmpty ? nil : $0 },
                origin: "the document")
        }
        if settings.profile == nil, let id = environment["AWS_ACCESS_KEY_ID"], !id.isEmpty,
            let secret = environment["AWS_SECRET_ACCESS_KEY"], !secret.isEmpty
        {
            let token = environment["AWS_SESSION_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
            return S3Credentials(
                accessKeyId: id, secretAccessKey: secret, sessionToken: token, origin: "the environment (AWS_ACCESS_KEY_ID)")
        }
        let path: String
        if let file = environment["AWS_SHARED_CREDENTIALS_FILE"], !file.isEmpty {
            path = file
        } else if let home = environment["HOME"], !home.isEmpty {
            path = home + "/.aws/credentials"
        } else {
            throw ConnectorError.targetDown(
                "no S3 credentials: none in the document, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are not set, and HOME is not set to find ~/.aws/credentials"
            )
        }
        let profile = settings.profile ?? environment["AWS_PROFILE"].flatMap { $0.isEmpty ? nil : $0 } ?? "default"
        guard let text = readFile(path) else {
            throw ConnectorError.targetDown(
                "no S3 credentials: none in the document, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are not set, and the shared credentials file \(path) cannot be read"
            )
        }
        let values = parseProfile(text, profile: profile)
        guard let id = values["aws_access_key_id"], let secret = values["aws_secret_access_key"] else {
            throw ConnectorError.targetDown(
                "no S3 credentials: profile '\(profile)' of \(path) has no aws_access_key_id and aws_secret_access_key")
        }
        return S3Credentials(
            accessKeyId: id, secretAccessKey: secret, sessionToken: values["aws_session_token"], origin: "profile '\(profile)' of \(path)")
    }

    /// The `key = value` pairs of section `[profile]` of an INI file.
    static func parseProfile(_ text: String, profile: String) -> [String: String] {
        var values: [String: String] = [:]
        var inProfile = false
        for rawLine in text.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }) {
            let line = S3KeyTemplate.trim(rawLine)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") && line.hasSuffix("]") {
                let name = S3KeyTemplate.trim(line.dropFirst().dropLast())
                inProfile = name == profile || name == "profile \(profile)"
                continue
            }
            guard inProfile, let equals = line.firstIndex(of: "=") else { continue }
            let key = S3KeyTemplate.trim(line[..<equals]).lowercased()
            let value = S3KeyTemplate.trim(line[line.index(after: equals)...])
            if !value.isEmpty { values[key] = value }
        }
        return values
    }

    static func readFile(_ path: String) -> String? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, 4096, file) }
            if count <= 0 { break }
            bytes.append(contentsOf: chunk[0..<count])
            if bytes.count > 1 << 20 { return nil }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The process environment, read when the target opens.
    static func processEnvironment() -> [String: String] {
        var result: [String: String] = [:]
        var pointer = environ
        while let entry = pointer.pointee {
            let text = String(cString: entry)
            if let equals = text.firstIndex(of: "=") {
                result[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            pointer += 1
        }
        return result
    }
}
