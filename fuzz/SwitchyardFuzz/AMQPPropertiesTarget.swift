#if canImport(Glibc)
    import Glibc
#endif
import CRabbitMQ
import Logging
import SwitchyardCore
@testable import RabbitMQConnector

/// AMQP message properties as a broker sends them (the property flags and fields of a content
/// header frame, headers table included), decoded by rabbitmq-c and turned into a message by the
/// `rabbitmq` source. The message then goes back out through the `rabbitmq` target's rendering
/// and property encoding, and is decoded again: what a bridge from one queue to another forwards
/// must come back the same (the properties, the key, every table header the source kept).
enum AMQPPropertiesTarget {
    static let keyHeader = "k"

    static let target: RabbitMQTarget = {
        let options = OptionValues(
            path: "targets[0].rabbitmq",
            entries: [
                "url": .string("amqp://guest:guest@127.0.0.1:1/"), "exchange": .string("out"),
                "keyHeader": .string(keyHeader),
            ])
        let setup = ConnectorSetup(name: "out", options: options, logger: Logger(label: "fuzz"), memoryLimit: 1 << 20)
        return try! RabbitMQTarget(setup)
    }()

    static func run(_ bytes: [UInt8]) {
        guard let first = decode(bytes) else { return }
        precondition(first.timestamp >= 0, "timestamp \(first.timestamp)")
        // Out through the target, as a queue-to-queue bridge would publish it.
        // What came from AMQP fits AMQP, except a header name with bytes that are not UTF-8:
        // names are text, each such byte becomes U+FFFD (three bytes), and a name that grows
        // past 255 bytes cannot be published: the target refuses that message (dead letter).
        let outgoing: RabbitMQTarget.Outgoing
        switch target.render(first) {
        case .success(let rendered): outgoing = rendered
        case .failure(let error):
            precondition(
                first.headers.contains {
                    $0.name.unicodeScalars.contains("\u{FFFD}") && $0.name.utf8.count > RabbitMQTarget.shortStringLimit
                },
                "the target refused a message decoded from AMQP: \(error)")
            return
        }
        var arena = CArena()
        defer { arena.free() }
        var properties = Publisher.properties(outgoing, persistent: true, sequence: nil, arena: &arena)
        var encoded = [UInt8](repeating: 0, count: 1 << 20)
        let size = encoded.withUnsafeMutableBytes { buffer in
            amqp_encode_properties(UInt16(AMQP_BASIC_CLASS), &properties, amqp_bytes_t(len: buffer.count, bytes: buffer.baseAddress))
        }
        precondition(size >= 0, "the target's properties did not encode: \(size)")
        guard let second = decode(Array(encoded[..<Int(size)])) else {
            preconditionFailure("the target's properties did not decode")
        }
        precondition(first.key == second.key, "key \(String(describing: first.key)) came back as \(String(describing: second.key))")
        for (name, _) in RabbitMQTarget.forwardedProperties + [(RabbitMQSource.HeaderName.priority, 0)] {
            let before = first.headers.first { $0.name == name }?.value
            let after = second.headers.first { $0.name == name }?.value
            // A priority that is not a number 0-255 is not forwarded.
            if name == RabbitMQSource.HeaderName.priority, before.flatMap({ UInt8(String(decoding: $0, as: UTF8.self)) }) == nil {
                continue
            }
            precondition(before == after, "\(name): \(String(describing: before)) came back as \(String(describing: after))")
        }
        let kept = { (message: Message) in message.headers.filter { !$0.name.hasPrefix("amqp-") && $0.name != keyHeader } }
        precondition(kept(first) == kept(second), "headers \(kept(first)) came back as \(kept(second))")
    }

    /// The source's message for a delivery with these encoded properties; nil when rabbitmq-c
    /// refuses them (as it would refuse the frame).
    static func decode(_ bytes: [UInt8]) -> Message? {
        var pool = amqp_pool_t()
        init_amqp_pool(&pool, 4096)
        defer { empty_amqp_pool(&pool) }
        var decoded: UnsafeMutableRawPointer?
        var input = bytes
        let status = input.withUnsafeMutableBytes { buffer in
            amqp_decode_properties(UInt16(AMQP_BASIC_CLASS), &pool, amqp_bytes_t(len: buffer.count, bytes: buffer.baseAddress), &decoded)
        }
        guard status == 0, let decoded else { return nil }
        var envelope = amqp_envelope_t()
        envelope.delivery_tag = 7
        envelope.message.properties = decoded.assumingMemoryBound(to: amqp_basic_properties_t.self).pointee
        return RabbitMQSource.message(envelope, generation: 1, session: 0x5eed, keyHeader: keyHeader)
    }
}
