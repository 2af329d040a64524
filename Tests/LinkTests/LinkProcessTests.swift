import Foundation
import Testing

/// Two `switchyard run` processes on loopback: `generate -> link` in the sender, `link -> file`
/// in the receiver.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct LinkProcessTests {
    /// The acknowledged-messages counter of source `gen` on a process's /metrics (nil if absent).
    func acknowledged(port: Int) async -> Int? {
        let metrics = await httpGet(port: port, "/metrics").body
        for line in metrics.split(separator: "\n")
        where line.hasPrefix("switchyard_source_acknowledged_messages_total") && line.contains("source=\"gen\"") {
            if let value = line.split(separator: " ").last.flatMap({ Double($0) }) { return Int(value) }
        }
        return nil
    }

    @Test func everyMessageArrivesWithTokenAndIsAcknowledgedAtTheSender() async throws {
        let scratch = try Scratch("all")
        let ports = freePorts(3)
        let tokenFile = try scratch.write("token", "link-secret-1\n")
        let output = scratch.path("out.txt")
        let receiverConfig = try scratch.write(
            "receiver.yaml",
            receiverDocument(
                linkPort: ports[0], httpPort: ports[1], output: output, security: "        tokenFile: \(tokenFile)"))
        let senderConfig = try scratch.write(
            "sender.yaml",
            senderDocument(
                linkPort: ports[0], httpPort: ports[2], count: 20_000, security: "        token: \"${file:\(tokenFile)}\""))
        let receiver = try RuntimeProcess("receiver", config: receiverConfig, scratch: scratch)
        try #require(
            await eventually(within: .seconds(20)) { await httpGet(port: ports[1], "/readyz").status == 200 },
            "receiver ready: \(receiver.logText.suffix(2000))")
        let sender = try RuntimeProcess("sender", config: senderConfig, scratch: scratch)
        // The sender's generator finishes, and the process exits 0, only when every message was
        // acknowledged, which the link target reports only after the receiver's file target
        // confirmed it.
        let status = await sender.exitStatus(within: .seconds(90))
        #expect(status == 0, "sender exit: \(sender.logText.suffix(3000))")
        let written = lines(of: output)
        let expected = expectedValues(20_000)
        #expect(
            Set(written) == expected,
            "\(Set(written).count) distinct of \(expected.count), \(expected.subtracting(written).count) missing; receiver: \(receiver.logText.suffix(2000))"
        )
        #expect(written.count == 20_000, "no reconnect, so no message twice (got \(written.count))")
        #expect(sender.logText.contains("link connected"))
        receiver.kill9()
    }

    @Test func killingTheReceiverMidStreamLosesNothing() async throws {
        let scratch = try Scratch("kill")
        let ports = freePorts(3)
        let output = scratch.path("out.txt")
        let count = 30_000
        // A slow file target (5 ms per batch) so the kill lands mid-stream.
        let receiverConfig = try scratch.write(
            "receiver.yaml",
            receiverDocument(
                linkPort: ports[0], httpPort: ports[1], output: output, fileDelay: "5ms"))
        let senderConfig = try scratch.write("sender.yaml", senderDocument(linkPort: ports[0], httpPort: ports[2], count: count))
        var receiver = try RuntimeProcess("receiver", config: receiverConfig, scratch: scratch)
        try #require(
            await eventually(within: .seconds(20)) { await httpGet(port: ports[1], "/readyz").status == 200 },
            "receiver ready: \(receiver.logText.suffix(2000))")
        let sender = try RuntimeProcess("sender", config: senderConfig, scratch: scratch)
        #expect(
            await eventually(within: .seconds(60)) { lines(of: output).count >= 5_000 }, "receiver wrote: \(receiver.logText.suffix(2000))")
        receiver.kill9()
        _ = await receiver.exitStatus(within: .seconds(10))
        let beforeRestart = lines(of: output).count
        #expect(beforeRestart < count, "the kill must land mid-stream")

        // While the receiver is gone the sender is not ready and acknowledges nothing more:
        // its link target's writes wait for the remote confirmation.
        #expect(
            await eventually(within: .seconds(10)) {
                let ready = await httpGet(port: ports[2], "/readyz")
                return ready.status == 503 && ready.body.contains("link-out")
            })
        let stalledAt = await acknowledged(port: ports[2])
        try await Task.sleep(for: .seconds(1))
        let stillAt = await acknowledged(port: ports[2])
        #expect(
            stalledAt != nil && stalledAt == stillAt,
            "acknowledged at the sender while the receiver is down: \(String(describing: stalledAt)) then \(String(describing: stillAt))")
        #expect(sender.process.isRunning)

        receiver = try RuntimeProcess("receiver", config: receiverConfig, scratch: scratch, attempt: 1)
        let status = await sender.exitStatus(within: .seconds(120))
        #expect(status == 0, "sender exit: \(sender.logText.suffix(3000))")
        let written = lines(of: output)
        let distinct = Set(written)
        let expected = expectedValues(count)
        let lost = expected.subtracting(distinct)
        #expect(lost.isEmpty, "lost \(lost.count) messages, e.g. \(lost.prefix(5)); receiver: \(receiver.logText.suffix(2000))")
        #expect(distinct.subtracting(expected).isEmpty, "unexpected values, e.g. \(distinct.subtracting(expected).prefix(5))")
        let duplicates = written.count - distinct.count
        print(
            "link kill -9 test: \(written.count) lines, \(distinct.count) distinct, \(duplicates) duplicates, \(beforeRestart) written before the kill"
        )
        #expect(sender.logText.contains("reconnecting"))
        receiver.kill9()
    }

    @Test func mutualTLSDeliversAndAWrongClientCertificateIsRefused() async throws {
        let scratch = try Scratch("tls")
        let good = try await TestPKI.make(in: scratch, prefix: "good")
        let rogue = try await TestPKI.make(in: scratch, prefix: "rogue")
        let ports = freePorts(4)
        let output = scratch.path("out.txt")
        let receiverConfig = try scratch.write(
            "receiver.yaml",
            receiverDocument(
                linkPort: ports[0], httpPort: ports[1], output: output,
                security: """
                            tls:
                              cert: \(good.serverCert)
                              key: \(good.serverKey)
                              clientCa: \(good.ca)
                    """))
        let receiver = try RuntimeProcess("receiver", config: receiverConfig, scratch: scratch)
        try #require(
            await eventually(within: .seconds(20)) { await httpGet(port: ports[1], "/readyz").status == 200 },
            "receiver ready: \(receiver.logText.suffix(2000))")

        // A client certificate from another authority: refused, nothing delivered.
        let rogueConfig = try scratch.write(
            "rogue.yaml",
            senderDocument(
                linkPort: ports[0], httpPort: ports[2], count: 500,
                security: senderTLS(ca: good.ca, cert: rogue.clientCert, key: rogue.clientKey)))
        let rogueSender = try RuntimeProcess("rogue", config: rogueConfig, scratch: scratch)
        var readiness = ""
        let refused = await eventually(within: .seconds(20)) {
            let ready = await httpGet(port: ports[2], "/readyz")
            readiness = ready.body
            return ready.status == 503 && ready.body.contains("UNKNOWN_CA")
        }
        #expect(refused, "readyz: \(readiness); log: \(rogueSender.logText.suffix(2000))")
        #expect(rogueSender.logText.contains("TLS"), "\(rogueSender.logText.suffix(2000))")
        #expect(lines(of: output).isEmpty)
        #expect(receiver.logText.contains("TLS"), "the receiver logs the refused handshake: \(receiver.logText.suffix(2000))")
        rogueSender.kill9()

        // A sender trusting another authority refuses the receiver's certificate.
        let distrustConfig = try scratch.write(
            "distrust.yaml",
            senderDocument(
                linkPort: ports[0], httpPort: ports[3], count: 500,
                security: senderTLS(ca: rogue.ca, cert: good.clientCert, key: good.clientKey)))
        let distrusting = try RuntimeProcess("distrust", config: distrustConfig, scratch: scratch)
        #expect(
            await eventually(within: .seconds(20)) {
                let ready = await httpGet(port: ports[3], "/readyz")
                return ready.status == 503 && ready.body.contains("CERTIFICATE_VERIFY_FAILED")
            }, "\(distrusting.logText.suffix(2000))")
        distrusting.kill9()
        #expect(lines(of: output).isEmpty)

        // The right client certificate: everything arrives.
        let goodConfig = try scratch.write(
            "good.yaml",
            senderDocument(
                linkPort: ports[0], httpPort: ports[2], count: 500,
                security: senderTLS(ca: good.ca, cert: good.clientCert, key: good.clientKey)))
        let sender = try RuntimeProcess("sender", config: goodConfig, scratch: scratch)
        #expect(await sender.exitStatus(within: .seconds(60)) == 0, "\(sender.logText.suffix(2000))")
        #expect(Set(lines(of: output)) == expectedValues(500))
        receiver.kill9()
    }

    @Test func aWrongTokenIsRefused() async throws {
        let scratch = try Scratch("token")
        let ports = freePorts(3)
        let output = scratch.path("out.txt")
        let receiverConfig = try scratch.write(
            "receiver.yaml",
            receiverDocument(
                linkPort: ports[0], httpPort: ports[1], output: output, security: "        token: right-token"))
        let senderConfig = try scratch.write(
            "sender.yaml",
            senderDocument(
                linkPort: ports[0], httpPort: ports[2], count: 100, security: "        token: wrong-token"))
        let receiver = try RuntimeProcess("receiver", config: receiverConfig, scratch: scratch)
        try #require(
            await eventually(within: .seconds(20)) { await httpGet(port: ports[1], "/readyz").status == 200 },
            "receiver ready: \(receiver.logText.suffix(2000))")
        let sender = try RuntimeProcess("sender", config: senderConfig, scratch: scratch)
        var readiness = ""
        let refused = await eventually(within: .seconds(20)) {
            let ready = await httpGet(port: ports[2], "/readyz")
            readiness = ready.body
            return ready.status == 503 && ready.body.contains("refused the token")
        }
        #expect(refused, "readyz: \(readiness); log: \(sender.logText.suffix(2000))")
        #expect(receiver.logText.contains("bearer token is missing or wrong"))
        #expect(lines(of: output).isEmpty)
        #expect(sender.process.isRunning, "a refused sender keeps retrying; it does not give up its messages")
        sender.kill9()
        receiver.kill9()
    }
}

/// The `tls` options of a sender (indented for `senderDocument`).
func senderTLS(ca: String, cert: String, key: String) -> String {
    """
            tls:
              ca: \(ca)
              cert: \(cert)
              key: \(key)
    """
}
