import CRdKafka

/// Owns an `rd_kafka_conf_t` until it is handed to `rd_kafka_new`.
final class RDKafkaConfig {
    private(set) var pointer: OpaquePointer?

    init() {
        pointer = rd_kafka_conf_new()
    }

    deinit {
        if let pointer { rd_kafka_conf_destroy(pointer) }
    }

    /// Sets one librdkafka property; throws with librdkafka's own explanation when the name is
    /// unknown or the value invalid.
    func set(_ name: String, _ value: String) throws(KafkaError) {
        guard let pointer else { return }
        var buffer = [CChar](repeating: 0, count: 512)
        let result = rd_kafka_conf_set(pointer, name, value, &buffer, buffer.count)
        if result != RD_KAFKA_CONF_OK {
            let text = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            throw KafkaError(RD_KAFKA_RESP_ERR__INVALID_ARG, text)
        }
    }

    func set(_ properties: [(String, String)]) throws(KafkaError) {
        for (name, value) in properties { try set(name, value) }
    }

    /// Creates a client of `type` from this configuration: `context` becomes its opaque (retained
    /// for the client's life, released again if creation fails), `callbacks` installs the
    /// client's callbacks, the log callback is always set. On success the configuration belongs
    /// to the client.
    func makeHandle(
        _ type: rd_kafka_type_t, context: RDKafkaCallbackContext, callbacks: (OpaquePointer) -> Void = { _ in }
    ) throws(KafkaError) -> OpaquePointer {
        guard let conf = pointer else { throw KafkaError(RD_KAFKA_RESP_ERR__INVALID_ARG, "configuration already used") }
        let opaque = Unmanaged.passRetained(context)
        rd_kafka_conf_set_opaque(conf, opaque.toOpaque())
        callbacks(conf)
        rd_kafka_conf_set_log_cb(conf, kafkaLogCallback)
        var buffer = [CChar](repeating: 0, count: 512)
        guard let handle = rd_kafka_new(type, conf, &buffer, buffer.count) else {
            opaque.release()
            throw KafkaError(RD_KAFKA_RESP_ERR__INVALID_ARG, buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
        }
        _ = take()
        return handle
    }

    /// Gives up ownership (after a successful `rd_kafka_new`).
    func take() -> OpaquePointer? {
        defer { pointer = nil }
        return pointer
    }

    /// Checks each property against a scratch configuration; returns the failures with
    /// librdkafka's message, in order.
    static func check(_ properties: [(String, String)]) -> [(name: String, message: String)] {
        var failures: [(name: String, message: String)] = []
        let scratch = RDKafkaConfig()
        for (name, value) in properties {
            do { try scratch.set(name, value) } catch { failures.append((name, error.message)) }
        }
        return failures
    }
}

/// A topic and partition, and an offset where one matters.
struct TopicPartition: Hashable, Sendable, CustomStringConvertible {
    var topic: String
    var partition: Int32

    var description: String { "\(topic)[\(partition)]" }
}

/// Owns an `rd_kafka_topic_partition_list_t`.
final class RDKafkaTopicPartitionList {
    let pointer: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>
    let owned: Bool

    init(capacity: Int = 4) {
        pointer = rd_kafka_topic_partition_list_new(Int32(max(1, capacity)))
        owned = true
    }

    /// Wraps a list librdkafka owns (inside a callback); it is not destroyed here.
    init(borrowing pointer: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) {
        self.pointer = pointer
        owned = false
    }

    deinit {
        if owned { rd_kafka_topic_partition_list_destroy(pointer) }
    }

    func add(_ partition: TopicPartition, offset: Int64? = nil) {
        let element = rd_kafka_topic_partition_list_add(pointer, partition.topic, partition.partition)!
        if let offset { element.pointee.offset = offset }
    }

    var count: Int { Int(pointer.pointee.cnt) }

    /// The entries: partition, offset and per-entry error.
    var entries: [(partition: TopicPartition, offset: Int64, error: KafkaError?)] {
        (0..<count).map { index in
            let element = pointer.pointee.elems[index]
            let error = element.err == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : KafkaError(element.err)
            return (TopicPartition(topic: String(cString: element.topic), partition: element.partition), element.offset, error)
        }
    }

    var partitions: [TopicPartition] { entries.map(\.partition) }
}
