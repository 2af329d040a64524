import SwitchyardCore
import Testing
@testable import LinkConnector

/// A document fragment, turned into a ``ConfigNode``.
indirect enum Node: ExpressibleByStringLiteral, ExpressibleByDictionaryLiteral {
    case scalar(String)
    case map([(String, Node)])

    init(stringLiteral value: String) { self = .scalar(value) }
    init(dictionaryLiteral elements: (String, Node)...) { self = .map(elements) }

    var config: ConfigNode {
        switch self {
        case .scalar(let text): ConfigNode(.scalar(.init(text: text)), line: 1)
        case .map(let entries): ConfigNode(.mapping(entries.map { ConfigNode.Entry(key: $0.0, keyLine: 1, value: $0.1.config) }), line: 1)
        }
    }
}

/// The problems the document loader reports for a link entry, as "path: message".
func problems(_ role: ConnectorRole, _ options: Node) -> [String] {
    let kind = role == .source ? LinkSource.kind.options : LinkTarget.kind.options
    let validate = role == .source ? LinkSource.kind.validate : LinkTarget.kind.validate
    var decoder = OptionDecoder(connectorKinds: [role: [("link", kind, validate)]])
    let entry: Node = ["name": "l", "link": options]
    let path = role == .source ? "spec.sources[0]" : "spec.targets[0]"
    _ = decoder.decode(entry.config, as: .connector(role), path: path)
    return decoder.issues.map { "\($0.path): \($0.message)" }
}

@Suite struct LinkOptionsTests {
    @Test func aValidTargetAndSourceHaveNoProblems() {
        #expect(problems(.target, ["address": "127.0.0.1:7400", "token": "t"]).isEmpty)
        #expect(problems(.target, ["address": "[::1]:7400", "tls": ["ca": "/ca.pem", "cert": "/c.pem", "key": "/k.pem"]]).isEmpty)
        #expect(problems(.source, ["listen": "0.0.0.0:7400", "tls": ["cert": "/s.pem", "key": "/s.key", "clientCa": "/ca.pem"]]).isEmpty)
    }

    @Test func badAddressesNameTheirPath() {
        let missingPort = problems(.target, ["address": "link.example.com"])
        #expect(missingPort.contains { $0.hasPrefix("spec.targets[0].link.address: expected host:port") }, "\(missingPort)")
        let badPort = problems(.target, ["address": "127.0.0.1:99999"])
        #expect(badPort.contains { $0.hasPrefix("spec.targets[0].link.address: the port") }, "\(badPort)")
        let bareIPv6 = problems(.target, ["address": "::1:7400"])
        #expect(bareIPv6.contains { $0.hasPrefix("spec.targets[0].link.address: write an IPv6 address in brackets") }, "\(bareIPv6)")
        let hostName = problems(.source, ["listen": "example.com:7400"])
        #expect(hostName.contains { $0.hasPrefix("spec.sources[0].link.listen: listen on an IP address") }, "\(hostName)")
        let missing = problems(.target, [:])
        #expect(missing.contains { $0.contains("spec.targets[0].link.address") }, "\(missing)")
    }

    @Test func securityOptionsAreChecked() {
        let half = problems(.target, ["address": "127.0.0.1:7400", "tls": ["ca": "/ca.pem", "cert": "/c.pem"]])
        #expect(half.contains("spec.targets[0].link.tls.key: cert and key go together: set both or neither"), "\(half)")
        let noCA = problems(.target, ["address": "127.0.0.1:7400", "tls": ["cert": "/c.pem", "key": "/k.pem"]])
        #expect(noCA.contains { $0.contains("spec.targets[0].link.tls.ca") }, "\(noCA)")
        let both = problems(.target, ["address": "127.0.0.1:7400", "token": "a", "tokenFile": "/t"])
        #expect(!both.isEmpty && both.allSatisfy { $0.contains("spec.targets[0].link") }, "\(both)")
        let empty = problems(.source, ["listen": "127.0.0.1:7400", "token": " "])
        #expect(empty.contains("spec.sources[0].link.token: must not be empty"), "\(empty)")
        let serverWithoutKey = problems(.source, ["listen": "127.0.0.1:7400", "tls": ["cert": "/s.pem"]])
        #expect(serverWithoutKey.contains { $0.hasPrefix("spec.sources[0].link.tls.key") }, "\(serverWithoutKey)")
    }

    @Test func tuningOptionsAreBounded() {
        let window = problems(.source, ["listen": "127.0.0.1:7400", "creditBytes": "100"])
        #expect(window.contains("spec.sources[0].link.creditBytes: must be at least 1KiB"), "\(window)")
        let delays = problems(.target, ["address": "127.0.0.1:7400", "reconnectDelay": "2s", "reconnectMaxDelay": "1s"])
        #expect(delays.contains("spec.targets[0].link.reconnectMaxDelay: must not be shorter than reconnectDelay"), "\(delays)")
    }

    @Test func addressesParse() {
        #expect(LinkAddress.parse("127.0.0.1:7400") == .success(LinkAddress(host: .ipv4("127.0.0.1"), port: 7400)))
        #expect(LinkAddress.parse("[::1]:7400") == .success(LinkAddress(host: .ipv6("::1"), port: 7400)))
        #expect(LinkAddress.parse("edge.example.com:443") == .success(LinkAddress(host: .name("edge.example.com"), port: 443)))
        #expect(LinkAddress.parse("300.1.1.1:1") == .success(LinkAddress(host: .name("300.1.1.1"), port: 1)))
    }

    @Test func tokensCompare() {
        #expect(tokensEqual("abc", "abc"))
        #expect(!tokensEqual("abc", "abd"))
        #expect(!tokensEqual("abc", "abcd"))
        #expect(!tokensEqual("", "a"))
    }
}
