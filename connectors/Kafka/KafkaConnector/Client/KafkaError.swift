import CRdKafka

/// An error reported by librdkafka: its code, its message and what kind of trouble it is.
public struct KafkaError: Error, Sendable, CustomStringConvertible {
    /// A librdkafka error code (`rd_kafka_resp_err_t`), kept opaque so that codes can be added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let raw: Int32

        init(_ raw: rd_kafka_resp_err_t) { self.raw = raw.rawValue }

        var c: rd_kafka_resp_err_t { rd_kafka_resp_err_t(rawValue: raw) }

        /// librdkafka's name of the code, e.g. `MSG_SIZE_TOO_LARGE` or `_QUEUE_FULL`.
        public var name: String { String(cString: rd_kafka_err2name(c)) }
        public var description: String { name }

        public static let noError = Code(RD_KAFKA_RESP_ERR_NO_ERROR)
        public static let queueFull = Code(RD_KAFKA_RESP_ERR__QUEUE_FULL)
        public static let allBrokersDown = Code(RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        public static let fatal = Code(RD_KAFKA_RESP_ERR__FATAL)
        public static let messageTimedOut = Code(RD_KAFKA_RESP_ERR__MSG_TIMED_OUT)
        public static let messageSizeTooLarge = Code(RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
        public static let invalidArgument = Code(RD_KAFKA_RESP_ERR__INVALID_ARG)
        public static let unknownTopic = Code(RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC)
        public static let unknownTopicOrPartition = Code(RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
        public static let unknownPartition = Code(RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION)
        public static let noOffset = Code(RD_KAFKA_RESP_ERR__NO_OFFSET)
        public static let partitionEOF = Code(RD_KAFKA_RESP_ERR__PARTITION_EOF)
        public static let destroy = Code(RD_KAFKA_RESP_ERR__DESTROY)
        public static let state = Code(RD_KAFKA_RESP_ERR__STATE)
    }

    /// How the connectors react to an error.
    public enum Kind: Sendable {
        /// Timeouts, transport errors, leader changes: retry.
        case retriable
        /// The message itself cannot be written (too large, invalid record).
        case message
        /// The system refuses every write (authorization, unknown topic, authentication, fatal).
        case system
    }

    public var code: Code
    public var message: String
    /// librdkafka's own verdict for `rd_kafka_error_t` errors (fatal errors need a new client).
    public var isFatal: Bool

    init(_ code: rd_kafka_resp_err_t, _ message: String? = nil, fatal: Bool = false) {
        self.code = Code(code)
        self.message = message ?? String(cString: rd_kafka_err2str(code))
        self.isFatal = fatal || code == RD_KAFKA_RESP_ERR__FATAL
    }

    init(_ code: Code, _ message: String, fatal: Bool = false) {
        self.init(code.c, message, fatal: fatal)
    }

    /// Takes over (and destroys) an `rd_kafka_error_t`.
    init(consuming error: OpaquePointer) {
        self.code = Code(rd_kafka_error_code(error))
        self.message = String(cString: rd_kafka_error_string(error))
        self.isFatal = rd_kafka_error_is_fatal(error) != 0
        rd_kafka_error_destroy(error)
    }

    public var kind: Kind {
        if isFatal { return .system }
        switch code.c {
        case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, RD_KAFKA_RESP_ERR_INVALID_MSG, RD_KAFKA_RESP_ERR_INVALID_RECORD,
            RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE, RD_KAFKA_RESP_ERR__INVALID_ARG,
            RD_KAFKA_RESP_ERR_UNSUPPORTED_COMPRESSION_TYPE, RD_KAFKA_RESP_ERR__BAD_MSG:
            return .message
        case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED,
            RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED, RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
            RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED, RD_KAFKA_RESP_ERR__AUTHENTICATION,
            RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC, RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
            RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION, RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION,
            RD_KAFKA_RESP_ERR_INVALID_REQUIRED_ACKS, RD_KAFKA_RESP_ERR__SSL, RD_KAFKA_RESP_ERR__FATAL,
            RD_KAFKA_RESP_ERR_UNSUPPORTED_VERSION, RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
            return .system
        default:
            return .retriable
        }
    }

    public var isRetriable: Bool { kind == .retriable }

    public var description: String { "\(code.name): \(message)" }
}

/// The version of the librdkafka this binary runs with.
enum KafkaVersion {
    static var text: String { String(cString: rd_kafka_version_str()) }
}
