import CRdKafka
import Logging
import SwitchyardCore

/// What a consumer reports from inside `poll` and `close`, on the thread that called them.
protocol RDKafkaConsumerEvents: AnyObject {
    /// Partitions were given to this member; the wrapper assigns them after this returns.
    func assigned(_ partitions: [TopicPartition])
    /// Partitions are taken away; the wrapper unassigns them after this returns. `lost` means
    /// they may already belong to another member (no commit is allowed).
    func revoked(_ partitions: [TopicPartition], lost: Bool)
    /// The result of an asynchronous commit.
    func commitCompleted(_ entries: [(partition: TopicPartition, offset: Int64, error: KafkaError?)], error: KafkaError?)
    /// A client-level error (all brokers down, fatal errors).
    func clientError(_ error: KafkaError)
}

/// Owns a consumer `rd_kafka_t`. Not thread-safe: every call, and every event it reports, happens
/// on the one thread that polls it (librdkafka's own threads only log).
final class RDKafkaConsumer {
    private var handle: OpaquePointer!
    private let context: RDKafkaCallbackContext
    let logger: Logger
    private var topicCache: (pointer: OpaquePointer?, name: String) = (nil, "")
    private var closed = false

    init(config: RDKafkaConfig, topics: [String], logger: Logger, events: any RDKafkaConsumerEvents) throws(KafkaError) {
        self.logger = logger
        context = RDKafkaCallbackContext(logger: logger)
        context.consumerEvents = events
        handle = try config.makeHandle(RD_KAFKA_CONSUMER, context: context) { conf in
            rd_kafka_conf_set_rebalance_cb(conf, consumerRebalanceCallback)
            rd_kafka_conf_set_offset_commit_cb(conf, consumerCommitCallback)
            rd_kafka_conf_set_error_cb(conf, consumerErrorCallback)
        }
        rd_kafka_poll_set_consumer(handle)
        guard !topics.isEmpty else { return }
        let list = RDKafkaTopicPartitionList(capacity: topics.count)
        for topic in topics { list.add(TopicPartition(topic: topic, partition: RD_KAFKA_PARTITION_UA)) }
        let result = rd_kafka_subscribe(handle, list.pointer)
        if result != RD_KAFKA_RESP_ERR_NO_ERROR {
            rd_kafka_destroy(handle)
            Unmanaged.passUnretained(context).release()
            self.handle = nil
            throw KafkaError(result)
        }
    }

    deinit {
        if let handle {
            context.consumerEvents = nil
            if !closed { rd_kafka_consumer_close(handle) }
            rd_kafka_destroy(handle)
            Unmanaged.passUnretained(context).release()
        }
    }

    enum Polled {
        case message(Message)
        case error(KafkaError, TopicPartition?)
    }

    /// Polls one message or event; rebalance and commit events are reported to `events` from
    /// inside this call. Returns nil when nothing arrived within `timeoutMs`.
    func poll(timeoutMs: Int32) -> Polled? {
        guard let raw = rd_kafka_consumer_poll(handle, timeoutMs) else { return nil }
        defer { rd_kafka_message_destroy(raw) }
        let record = raw.pointee
        let topic = topicName(record.rkt)
        if record.err != RD_KAFKA_RESP_ERR_NO_ERROR {
            let text = record.payload.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: record.len), as: UTF8.self) }
            let partition = record.rkt == nil ? nil : TopicPartition(topic: topic, partition: record.partition)
            return .error(KafkaError(record.err, text ?? nil), partition)
        }
        return .message(Self.message(raw, topic: topic))
    }

    /// A record as a ``Message``: key, value, headers and timestamp copied out of it.
    static func message(_ raw: UnsafeMutablePointer<rd_kafka_message_t>, topic: String) -> Message {
        let record = raw.pointee
        var message = Message(value: [], channel: topic, partition: record.partition, offset: record.offset)
        if let payload = record.payload, record.len > 0 {
            message.value = Array(UnsafeRawBufferPointer(start: payload, count: record.len))
        }
        if let key = record.key {
            message.key = Array(UnsafeRawBufferPointer(start: key, count: record.key_len))
        }
        var type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let timestamp = rd_kafka_message_timestamp(raw, &type)
        message.timestamp = timestamp >= 0 ? timestamp : 0
        var headers: OpaquePointer?
        if rd_kafka_message_headers(raw, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR, let headers {
            let count = rd_kafka_header_cnt(headers)
            message.headers.reserveCapacity(count)
            for index in 0..<count {
                var name: UnsafePointer<CChar>?
                var value: UnsafeRawPointer?
                var size = 0
                if rd_kafka_header_get_all(headers, index, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR, let name {
                    let bytes = value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? []
                    message.headers.append(Header(name: String(cString: name), value: bytes))
                }
            }
        }
        return message
    }

    private func topicName(_ pointer: OpaquePointer?) -> String {
        guard let pointer else { return "" }
        if pointer == topicCache.pointer { return topicCache.name }
        let name = String(cString: rd_kafka_topic_name(pointer))
        topicCache = (pointer, name)
        return name
    }

    /// Commits `offsets` (the next offset to read, per partition).
    func commit(_ offsets: [(TopicPartition, Int64)], async: Bool) throws(KafkaError) {
        guard !offsets.isEmpty else { return }
        let list = RDKafkaTopicPartitionList(capacity: offsets.count)
        for (partition, offset) in offsets { list.add(partition, offset: offset) }
        let result = rd_kafka_commit(handle, list.pointer, async ? 1 : 0)
        if result != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(result) }
        if !async, let failed = list.entries.first(where: { $0.error != nil }) {
            throw KafkaError(failed.error!.code.c, "commit of \(failed.partition) failed: \(failed.error!.message)")
        }
    }

    /// The committed offsets of `partitions` (the next offset to read; negative when none).
    func committed(_ partitions: [TopicPartition], timeoutMs: Int32) throws(KafkaError) -> [TopicPartition: Int64] {
        let list = RDKafkaTopicPartitionList(capacity: partitions.count)
        for partition in partitions { list.add(partition) }
        let result = rd_kafka_committed(handle, list.pointer, timeoutMs)
        if result != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(result) }
        var offsets: [TopicPartition: Int64] = [:]
        for entry in list.entries { offsets[entry.partition] = entry.offset }
        return offsets
    }

    func pause(_ partitions: [TopicPartition]) {
        guard !partitions.isEmpty else { return }
        let list = RDKafkaTopicPartitionList(capacity: partitions.count)
        for partition in partitions { list.add(partition) }
        _ = rd_kafka_pause_partitions(handle, list.pointer)
    }

    func resume(_ partitions: [TopicPartition]) {
        guard !partitions.isEmpty else { return }
        let list = RDKafkaTopicPartitionList(capacity: partitions.count)
        for partition in partitions { list.add(partition) }
        _ = rd_kafka_resume_partitions(handle, list.pointer)
    }

    /// Moves the fetch positions of `offsets` (the next offset to read); does not wait.
    func seek(_ offsets: [(TopicPartition, Int64)]) {
        guard !offsets.isEmpty else { return }
        let list = RDKafkaTopicPartitionList(capacity: offsets.count)
        for (partition, offset) in offsets { list.add(partition, offset: offset) }
        if let error = rd_kafka_seek_partitions(handle, list.pointer, 0) {
            logger.warning("kafka seek failed", metadata: ["error": "\(KafkaError(consuming: error))"])
        }
    }

    /// The last known high watermark of a partition (updated with every fetch), if any.
    func highWatermark(_ partition: TopicPartition) -> Int64? {
        watermarks(partition)?.high
    }

    /// The last known low and high watermarks of a partition (from fetches; no request).
    func watermarks(_ partition: TopicPartition) -> (low: Int64, high: Int64)? {
        var low: Int64 = -1
        var high: Int64 = -1
        let result = rd_kafka_get_watermark_offsets(handle, partition.topic, partition.partition, &low, &high)
        return result == RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0 ? (max(0, low), high) : nil
    }

    /// Asks a broker for metadata: whether the cluster answers within `timeoutMs`.
    func isReachable(timeoutMs: Int32) -> Bool {
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let result = rd_kafka_metadata(handle, 0, nil, &metadata, timeoutMs)
        if let metadata { rd_kafka_metadata_destroy(metadata) }
        return result == RD_KAFKA_RESP_ERR_NO_ERROR
    }

    /// The fatal error raised on this client, if any (the client must then be replaced).
    func fatalError() -> KafkaError? {
        var buffer = [CChar](repeating: 0, count: 512)
        let code = rd_kafka_fatal_error(handle, &buffer, buffer.count)
        guard code != RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
        return KafkaError(code, buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }, fatal: true)
    }

    /// Leaves the group: the final revoke is reported to `events` from inside this call.
    func close() {
        guard !closed else { return }
        closed = true
        rd_kafka_consumer_close(handle)
    }
}

private func consumerRebalanceCallback(
    _ handle: OpaquePointer?, _ error: rd_kafka_resp_err_t,
    _ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?, _ opaque: UnsafeMutableRawPointer?
) {
    guard let handle, let opaque else { return }
    let context = Unmanaged<RDKafkaCallbackContext>.fromOpaque(opaque).takeUnretainedValue()
    let partitions = list.map { RDKafkaTopicPartitionList(borrowing: $0).partitions } ?? []
    let cooperative = String(cString: rd_kafka_rebalance_protocol(handle)) == "COOPERATIVE"
    switch error {
    case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
        context.consumerEvents?.assigned(partitions)
        if cooperative {
            if let failure = rd_kafka_incremental_assign(handle, list) {
                context.logger.error("incremental assign failed", metadata: ["error": "\(KafkaError(consuming: failure))"])
            }
        } else {
            _ = rd_kafka_assign(handle, list)
        }
    case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
        let lost = rd_kafka_assignment_lost(handle) != 0
        context.consumerEvents?.revoked(partitions, lost: lost)
        if cooperative {
            if let failure = rd_kafka_incremental_unassign(handle, list) {
                context.logger.error("incremental unassign failed", metadata: ["error": "\(KafkaError(consuming: failure))"])
            }
        } else {
            _ = rd_kafka_assign(handle, nil)
        }
    default:
        context.logger.error("rebalance failed", metadata: ["error": "\(KafkaError(error))"])
        context.consumerEvents?.revoked(partitions, lost: true)
        _ = rd_kafka_assign(handle, nil)
    }
}

private func consumerCommitCallback(
    _ handle: OpaquePointer?, _ error: rd_kafka_resp_err_t,
    _ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?, _ opaque: UnsafeMutableRawPointer?
) {
    guard let opaque else { return }
    let context = Unmanaged<RDKafkaCallbackContext>.fromOpaque(opaque).takeUnretainedValue()
    let entries = list.map { RDKafkaTopicPartitionList(borrowing: $0).entries } ?? []
    context.consumerEvents?.commitCompleted(entries, error: error == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : KafkaError(error))
}

private func consumerErrorCallback(
    _ handle: OpaquePointer?, _ code: Int32, _ reason: UnsafePointer<CChar>?, _ opaque: UnsafeMutableRawPointer?
) {
    guard let opaque else { return }
    let error = KafkaError(rd_kafka_resp_err_t(rawValue: code), reason.map { String(cString: $0) })
    Unmanaged<RDKafkaCallbackContext>.fromOpaque(opaque).takeUnretainedValue().consumerEvents?.clientError(error)
}

/// librdkafka's log lines go to swift-log; called on librdkafka's internal threads.
func kafkaLogCallback(_ handle: OpaquePointer?, _ level: Int32, _ facility: UnsafePointer<CChar>?, _ text: UnsafePointer<CChar>?) {
    guard let handle, let opaque = rd_kafka_opaque(handle) else { return }
    let logger = Unmanaged<RDKafkaCallbackContext>.fromOpaque(opaque).takeUnretainedValue().logger
    let message = text.map { String(cString: $0) } ?? ""
    let metadata: Logger.Metadata = ["facility": "\(facility.map { String(cString: $0) } ?? "")"]
    switch level {
    case ...3: logger.error("librdkafka: \(message)", metadata: metadata)
    case 4: logger.warning("librdkafka: \(message)", metadata: metadata)
    case 5, 6: logger.info("librdkafka: \(message)", metadata: metadata)
    default: logger.debug("librdkafka: \(message)", metadata: metadata)
    }
}

/// The `opaque` of a client handle: what the global C callbacks need. Retained by the handle's
/// wrapper until `rd_kafka_destroy` returned, so late callbacks never see a freed object.
final class RDKafkaCallbackContext: @unchecked Sendable {
    let logger: Logger
    /// Set before `rd_kafka_new`, cleared before the handle is destroyed; read on the poll thread.
    weak var consumerEvents: (any RDKafkaConsumerEvents)?
    var producerError: ((KafkaError) -> Void)?

    init(logger: Logger) {
        self.logger = logger
    }
}
