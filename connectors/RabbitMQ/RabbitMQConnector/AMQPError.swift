import CRabbitMQ
import SwitchyardCore

/// An error of rabbitmq-c or of the broker, with what it means for a connector.
struct AMQPError: Error, Sendable, CustomStringConvertible {
    enum Kind: Sendable {
        /// The library failed: socket error, timeout, connection closed (library status code).
        case library
        /// The broker closed the channel (AMQP reply code such as 404 NOT_FOUND).
        case channelClosed
        /// The broker closed the connection (AMQP reply code such as 403 ACCESS_REFUSED, 530 NOT_ALLOWED).
        case connectionClosed
        /// The configuration cannot work (a URL that does not parse, TLS files that cannot be read).
        case configuration
    }

    var kind: Kind
    /// The library status (negative) for `.library`, the AMQP reply code otherwise.
    var code: Int
    var message: String

    var description: String { message }

    /// Whether retrying can help: lost connections and timeouts can; refused access, missing
    /// queues and exchanges and bad configuration need an operator.
    var isRetriable: Bool {
        switch kind {
        case .library:
            return true
        case .configuration:
            return false
        case .channelClosed, .connectionClosed:
            // 403 access refused, 404 not found, 406 precondition failed (declared with other
            // arguments), 530 not allowed (vhost): the broker will say the same again.
            return ![403, 404, 406, 530].contains(code)
        }
    }

    /// The broker refused a consumer because another one holds the queue exclusively (or
    /// this one asked for exclusive use of a queue that has consumers): 403 on the channel.
    var refusesExclusiveUse: Bool {
        kind == .channelClosed && code == 403 && message.contains("exclusive")
    }

    /// The error as the core's ``ConnectorError``: retriable, or the target is down.
    var connectorError: ConnectorError {
        isRetriable ? .retriable(message) : .targetDown(message)
    }

    static func library(_ status: Int32, _ context: String) -> AMQPError {
        AMQPError(kind: .library, code: Int(status), message: "\(context): \(String(cString: amqp_error_string2(status)))")
    }

    /// Interprets an RPC reply; nil when it is normal.
    static func from(_ reply: amqp_rpc_reply_t, _ context: String) -> AMQPError? {
        switch reply.reply_type {
        case AMQP_RESPONSE_NORMAL:
            return nil
        case AMQP_RESPONSE_NONE:
            return AMQPError(kind: .library, code: 0, message: "\(context): no reply from the broker")
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            return .library(reply.library_error, context)
        case AMQP_RESPONSE_SERVER_EXCEPTION:
            if reply.reply.id == amqp_method_number_t(SWITCHYARD_AMQP_CONNECTION_CLOSE), let decoded = reply.reply.decoded {
                let close = decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
                return AMQPError(
                    kind: .connectionClosed, code: Int(close.reply_code),
                    message: "\(context): the broker closed the connection: \(close.reply_code) \(close.reply_text.string)")
            }
            if reply.reply.id == amqp_method_number_t(SWITCHYARD_AMQP_CHANNEL_CLOSE), let decoded = reply.reply.decoded {
                let close = decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
                return AMQPError(
                    kind: .channelClosed, code: Int(close.reply_code),
                    message: "\(context): the broker closed the channel: \(close.reply_code) \(close.reply_text.string)")
            }
            return AMQPError(kind: .library, code: 0, message: "\(context): unexpected broker method \(reply.reply.id)")
        default:
            return AMQPError(kind: .library, code: 0, message: "\(context): unknown reply type")
        }
    }
}

extension amqp_bytes_t {
    /// The bytes as text (AMQP short strings are UTF-8).
    var string: String {
        guard len > 0, let bytes else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: bytes, count: len), as: UTF8.self)
    }

    /// A copy of the bytes.
    var array: [UInt8] {
        guard len > 0, let bytes else { return [] }
        return Array(UnsafeRawBufferPointer(start: bytes, count: len))
    }
}
