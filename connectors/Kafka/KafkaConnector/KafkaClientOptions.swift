#if canImport(Glibc)
    import Glibc
#endif
import SwitchyardCore

/// The options the `kafka` source and target share: brokers, client id, TLS, SASL and raw
/// librdkafka properties, and how they become librdkafka properties.
enum KafkaClientOptions {
    static let tlsSchema = ObjectSchema(
        doc: "TLS to the brokers (security.protocol SSL, or SASL_SSL with sasl).",
        [
            OptionField("ca", .string, doc: "PEM file of the certificate authorities to trust (ssl.ca.location); absent: the system's"),
            OptionField("cert", .string, doc: "PEM file of the client certificate, for mutual TLS (ssl.certificate.location)"),
            OptionField("key", .string, doc: "PEM file of the client's private key (ssl.key.location)"),
            OptionField("keyPassword", .secret, doc: "password of the private key (ssl.key.password)"),
            OptionField(
                "verifyHostname", .bool, default: "true",
                doc: "check the broker's host name against its certificate (ssl.endpoint.identification.algorithm)"),
        ])

    static let saslSchema = ObjectSchema(
        doc: "SASL authentication (security.protocol SASL_PLAINTEXT, or SASL_SSL with tls).",
        [
            OptionField("mechanism", .choice(["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]), default: "PLAIN", doc: "sasl.mechanism"),
            OptionField("username", .string, required: true, doc: "sasl.username"),
            OptionField("password", .secret, required: true, doc: "sasl.password"),
        ])

    static let fields: [OptionField] = [
        OptionField("brokers", .list(.string), required: true, doc: "bootstrap brokers, host:port each (bootstrap.servers)"),
        OptionField("clientId", .string, default: "switchyard", doc: "client.id shown in broker logs and quotas"),
        OptionField("tls", .object(tlsSchema), doc: "TLS settings; setting this object turns TLS on"),
        OptionField("sasl", .object(saslSchema), doc: "SASL settings; setting this object turns SASL on"),
        OptionField(
            "options", .map(.string),
            doc:
                "any librdkafka property, passed as is (checked by librdkafka when the document is validated); applied last, so it overrides the fields above"
        ),
    ]

    /// The librdkafka properties of the shared fields; the raw `options` come last.
    static func properties(_ options: OptionValues) -> [(String, String)] {
        var properties: [(String, String)] = []
        properties.append(("bootstrap.servers", (options.strings("brokers") ?? []).joined(separator: ",")))
        if let clientId = options.string("clientId") { properties.append(("client.id", clientId)) }
        let tls = options.object("tls")
        let sasl = options.object("sasl")
        switch (tls != nil, sasl != nil) {
        case (true, true): properties.append(("security.protocol", "SASL_SSL"))
        case (true, false): properties.append(("security.protocol", "SSL"))
        case (false, true): properties.append(("security.protocol", "SASL_PLAINTEXT"))
        case (false, false): break
        }
        if let tls {
            if let ca = tls.string("ca") { properties.append(("ssl.ca.location", ca)) }
            if let cert = tls.string("cert") { properties.append(("ssl.certificate.location", cert)) }
            if let key = tls.string("key") { properties.append(("ssl.key.location", key)) }
            if let password = tls.string("keyPassword") { properties.append(("ssl.key.password", password)) }
            if tls.bool("verifyHostname") == false { properties.append(("ssl.endpoint.identification.algorithm", "none")) }
        }
        if let sasl {
            properties.append(("sasl.mechanism", sasl.string("mechanism") ?? "PLAIN"))
            if let username = sasl.string("username") { properties.append(("sasl.username", username)) }
            if let password = sasl.string("password") { properties.append(("sasl.password", password)) }
        }
        properties.append(contentsOf: raw(options))
        return properties
    }

    /// The `options` map as librdkafka properties.
    static func raw(_ options: OptionValues) -> [(String, String)] {
        (options.map("options") ?? []).compactMap { entry in entry.value.stringValue.map { (entry.key, $0) } }
    }

    /// Checks the shared fields; `reserved` maps librdkafka properties the connector sets itself
    /// to the field to use instead (or an explanation).
    static func validate(_ options: OptionValues, reserved: [String: String], derived: [(String, String)]) -> [ConfigIssue] {
        var issues: [ConfigIssue] = []
        let brokers = options.strings("brokers") ?? []
        if brokers.isEmpty {
            issues.append(options.issue("brokers", "needs at least one broker (host:port)"))
        }
        for (index, broker) in brokers.enumerated() where broker.trimmingSpaces.isEmpty {
            issues.append(
                ConfigIssue(
                    path: "\(options.path(of: "brokers"))[\(index)]", line: options.line(of: "brokers"), message: "must not be empty"))
        }
        let optionsPath = options.path(of: "options")
        let optionsLine = options.line(of: "options")
        var checked: [(String, String)] = []
        for (name, value) in raw(options) {
            if let instead = reserved[name] {
                issues.append(
                    ConfigIssue(path: "\(optionsPath).\(name)", line: optionsLine, message: "'\(name)' is set by the connector: \(instead)")
                )
                continue
            }
            if let failure = RDKafkaConfig.check([(name, value)]).first {
                issues.append(
                    ConfigIssue(path: "\(optionsPath).\(name)", line: optionsLine, message: "librdkafka refuses it: \(failure.message)"))
                continue
            }
            checked.append((name, value))
        }
        if let tls = options.object("tls") {
            for field in ["ca", "cert", "key"] {
                guard let path = tls.string(field) else { continue }
                if access(path, R_OK) != 0 {
                    let reason = String(cString: strerror(errno))
                    issues.append(tls.issue(field, "cannot read '\(path)': \(reason)"))
                }
            }
            if (tls.string("cert") == nil) != (tls.string("key") == nil) {
                issues.append(tls.issue(tls.string("cert") == nil ? "key" : "cert", "cert and key go together (mutual TLS needs both)"))
            }
        }
        // The whole configuration as librdkafka will see it (TLS and SASL support of this build).
        if issues.isEmpty {
            let all = properties(options).filter { property in !raw(options).contains { $0.0 == property.0 } } + derived + checked
            for failure in RDKafkaConfig.check(all) {
                let field =
                    failure.name.hasPrefix("ssl.")
                    ? "tls"
                    : failure.name.hasPrefix("sasl.") || failure.name == "security.protocol"
                        ? (options.has("sasl") ? "sasl" : "tls") : "brokers"
                issues.append(options.issue(field, "librdkafka refuses \(failure.name): \(failure.message)"))
            }
        }
        return issues
    }
}

extension String {
    var trimmingSpaces: String {
        var slice = Substring(self)
        while let first = slice.first, first.isWhitespace { slice.removeFirst() }
        while let last = slice.last, last.isWhitespace { slice.removeLast() }
        return String(slice)
    }
}
