/// A `host:port` pair from a link option (`address` of a target, `listen` of a source).
/// IPv6 literals are written in brackets: `[::1]:7400`.
struct LinkAddress: Sendable, Equatable, CustomStringConvertible {
    enum Host: Sendable, Equatable {
        case ipv4(String)
        case ipv6(String)
        case name(String)
    }

    var host: Host
    var port: Int

    var hostText: String {
        switch host {
        case .ipv4(let text), .ipv6(let text), .name(let text): text
        }
    }

    var description: String {
        if case .ipv6(let text) = host { return "[\(text)]:\(port)" }
        return "\(hostText):\(port)"
    }

    static func parse(_ text: String) -> Result<LinkAddress, LinkOptionError> {
        var host: Substring
        var portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return .failure(.init("an IPv6 address in [ ] is not closed")) }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.first == ":" else { return .failure(.init("expected host:port, e.g. [::1]:7400")) }
            portText = rest.dropFirst()
            guard !host.isEmpty else { return .failure(.init("the address names no host")) }
            guard let port = Int(portText), (1...65535).contains(port) else {
                return .failure(.init("the port must be a number from 1 to 65535"))
            }
            return .success(LinkAddress(host: .ipv6(String(host)), port: port))
        }
        guard let colon = text.lastIndex(of: ":") else {
            return .failure(.init("expected host:port, e.g. 127.0.0.1:7400 or link.example.com:7400"))
        }
        host = text[..<colon]
        portText = text[text.index(after: colon)...]
        guard !host.isEmpty else { return .failure(.init("the address names no host")) }
        guard !host.contains(":") else { return .failure(.init("write an IPv6 address in brackets, e.g. [::1]:7400")) }
        guard let port = Int(portText), (1...65535).contains(port) else {
            return .failure(.init("the port must be a number from 1 to 65535"))
        }
        let isIPv4 =
            host.split(separator: ".", omittingEmptySubsequences: false).count == 4
            && host.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { part in
                !part.isEmpty && part.count <= 3 && part.allSatisfy(\.isNumber) && (Int(part) ?? 256) <= 255
            }
        return .success(LinkAddress(host: isIPv4 ? .ipv4(String(host)) : .name(String(host)), port: port))
    }
}

/// A problem with a link option, without the option's path (the caller adds it).
struct LinkOptionError: Error, Sendable, Equatable {
    var message: String
    init(_ message: String) { self.message = message }
}
