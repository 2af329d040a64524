import CRdKafka
import Logging
import Synchronization
import SwitchyardCore

/// Collects the delivery reports of one written batch and resumes the writer when the last
/// one arrived. Reports arrive on whichever thread calls `rd_kafka_poll` or `rd_kafka_flush`.
final class DeliveryTracker: Sendable {
    struct Slot {
        var index: Int
        var tracker: Unmanaged<DeliveryTracker>
    }

    struct State {
        var remaining: Int
        var failures: [Int: KafkaError] = [:]
        var continuation: CheckedContinuation<[Int: KafkaError], Never>?
        var done = false
    }

    let count: Int
    nonisolated(unsafe) let slots: UnsafeMutablePointer<Slot>
    let state: Mutex<State>
    nonisolated(unsafe) private var keepAlive: Unmanaged<DeliveryTracker>?

    init(count: Int) {
        self.count = count
        slots = .allocate(capacity: max(1, count))
        state = Mutex(State(remaining: count))
        let me = Unmanaged.passUnretained(self)
        for index in 0..<count { (slots + index).initialize(to: Slot(index: index, tracker: me)) }
        // Outstanding reports keep the tracker alive even if the writer gives up waiting.
        if count > 0 { keepAlive = Unmanaged.passRetained(self) }
    }

    deinit {
        slots.deinitialize(count: count)
        slots.deallocate()
    }

    /// Records the outcome of message `index` (nil: written).
    func report(_ index: Int, _ error: KafkaError?) {
        let (continuation, finished) = state.withLock { state -> (CheckedContinuation<[Int: KafkaError], Never>?, [Int: KafkaError]?) in
            if let error { state.failures[index] = error }
            state.remaining -= 1
            guard state.remaining == 0 else { return (nil, nil) }
            state.done = true
            defer { state.continuation = nil }
            return (state.continuation, state.failures)
        }
        if let finished {
            continuation?.resume(returning: finished)
            let keep = keepAlive
            keepAlive = nil
            keep?.release()
        }
    }

    /// Waits for every report; returns the failures by message index.
    func wait() async -> [Int: KafkaError] {
        await withCheckedContinuation { (continuation: CheckedContinuation<[Int: KafkaError], Never>) in
            let ready = state.withLock { state -> [Int: KafkaError]? in
                if state.done { return state.failures }
                state.continuation = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}

/// Owns a producer `rd_kafka_t`. `produce` may be called from one thread while another polls.
final class RDKafkaProducer: @unchecked Sendable {
    private var handle: OpaquePointer!
    private let context: RDKafkaCallbackContext

    init(config: RDKafkaConfig, logger: Logger, onError: @escaping (KafkaError) -> Void) throws(KafkaError) {
        context = RDKafkaCallbackContext(logger: logger)
        context.producerError = onError
        handle = try config.makeHandle(RD_KAFKA_PRODUCER, context: context) { conf in
            rd_kafka_conf_set_dr_msg_cb(conf, producerDeliveryCallback)
            rd_kafka_conf_set_error_cb(conf, producerErrorCallback)
        }
    }

    deinit {
        rd_kafka_destroy(handle)
        Unmanaged.passUnretained(context).release()
    }

    /// Enqueues one message; its delivery report goes to `tracker` as message `index`.
    /// `partition` nil lets the configured partitioner choose. Returns the error when librdkafka
    /// refused the message at once (`_QUEUE_FULL` among them).
    func produce(
        topic: String, partition: Int32?, key: [UInt8]?, value: [UInt8], headers: [Header], timestamp: Int64,
        tracker: DeliveryTracker, index: Int
    ) -> KafkaError? {
        var list: OpaquePointer?
        if !headers.isEmpty {
            list = rd_kafka_headers_new(headers.count)
            for header in headers {
                header.value.withUnsafeBytes { bytes in
                    _ = rd_kafka_header_add(list, header.name, -1, bytes.baseAddress, bytes.count)
                }
            }
        }
        let error: OpaquePointer? = topic.withCString { topicName in
            value.withUnsafeBytes { valueBytes in
                withKey(key) { keyPointer, keyLength in
                    var values = [rd_kafka_vu_t](repeating: rd_kafka_vu_t(), count: 8)
                    var count = 0
                    func add(_ type: rd_kafka_vtype_t, _ set: (inout rd_kafka_vu_t) -> Void) {
                        values[count].vtype = type
                        set(&values[count])
                        count += 1
                    }
                    add(RD_KAFKA_VTYPE_TOPIC) { $0.u.cstr = topicName }
                    add(RD_KAFKA_VTYPE_PARTITION) { $0.u.i32 = partition ?? RD_KAFKA_PARTITION_UA }
                    add(RD_KAFKA_VTYPE_VALUE) {
                        $0.u.mem.ptr = valueBytes.count > 0 ? UnsafeMutableRawPointer(mutating: valueBytes.baseAddress) : nil
                        $0.u.mem.size = valueBytes.count
                    }
                    if let keyPointer {
                        add(RD_KAFKA_VTYPE_KEY) {
                            $0.u.mem.ptr = UnsafeMutableRawPointer(mutating: keyPointer)
                            $0.u.mem.size = keyLength
                        }
                    }
                    add(RD_KAFKA_VTYPE_MSGFLAGS) { $0.u.i = RD_KAFKA_MSG_F_COPY }
                    add(RD_KAFKA_VTYPE_OPAQUE) { $0.u.ptr = UnsafeMutableRawPointer(tracker.slots + index) }
                    if timestamp > 0 { add(RD_KAFKA_VTYPE_TIMESTAMP) { $0.u.i64 = timestamp } }
                    if let list { add(RD_KAFKA_VTYPE_HEADERS) { $0.u.headers = list } }
                    return rd_kafka_produceva(handle, &values, count)
                }
            }
        }
        guard let error else { return nil }
        // On failure the headers still belong to us.
        if let list { rd_kafka_headers_destroy(list) }
        return KafkaError(consuming: error)
    }

    private func withKey<T>(_ key: [UInt8]?, _ body: (UnsafeRawPointer?, Int) -> T) -> T {
        guard let key else { return body(nil, 0) }
        if key.isEmpty {
            // An empty (not absent) key: librdkafka needs a non-null pointer with length 0.
            return withUnsafeBytes(of: 0 as UInt8) { body($0.baseAddress, 0) }
        }
        return key.withUnsafeBytes { body($0.baseAddress, $0.count) }
    }

    /// Serves delivery reports and errors for up to `timeoutMs`.
    @discardableResult
    func poll(timeoutMs: Int32) -> Int32 {
        rd_kafka_poll(handle, timeoutMs)
    }

    /// Waits until every enqueued message got its report, at most `timeoutMs`.
    func flush(timeoutMs: Int32) -> Bool {
        rd_kafka_flush(handle, timeoutMs) == RD_KAFKA_RESP_ERR_NO_ERROR
    }

    /// Fails every message still queued or in flight (their reports say `_PURGE_QUEUE`).
    func purge() {
        _ = rd_kafka_purge(handle, Int32(RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT))
        rd_kafka_poll(handle, 0)
    }

    var outstanding: Int { Int(rd_kafka_outq_len(handle)) }

    func fatalError() -> KafkaError? {
        var buffer = [CChar](repeating: 0, count: 512)
        let code = rd_kafka_fatal_error(handle, &buffer, buffer.count)
        guard code != RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
        return KafkaError(code, buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }, fatal: true)
    }

    /// The number of partitions of `topic`, asked of a broker (blocks up to `timeoutMs`); nil
    /// when the broker does not answer or does not know the topic.
    func partitionCount(topic: String, timeoutMs: Int32) -> Int32? {
        guard let topicHandle = rd_kafka_topic_new(handle, topic, nil) else { return nil }
        defer { rd_kafka_topic_destroy(topicHandle) }
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let result = rd_kafka_metadata(handle, 0, topicHandle, &metadata, timeoutMs)
        guard let metadata else { return nil }
        defer { rd_kafka_metadata_destroy(metadata) }
        guard result == RD_KAFKA_RESP_ERR_NO_ERROR, metadata.pointee.topic_cnt > 0, let topics = metadata.pointee.topics else { return nil }
        let entry = topics[0]
        guard entry.err == RD_KAFKA_RESP_ERR_NO_ERROR, entry.partition_cnt > 0 else { return nil }
        return entry.partition_cnt
    }

    /// Asks a broker for the topic's metadata: nil when it answers within `timeoutMs`.
    func checkCluster(timeoutMs: Int32) -> KafkaError? {
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let result = rd_kafka_metadata(handle, 0, nil, &metadata, timeoutMs)
        if let metadata { rd_kafka_metadata_destroy(metadata) }
        return result == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : KafkaError(result)
    }
}

private func producerDeliveryCallback(
    _ handle: OpaquePointer?, _ message: UnsafePointer<rd_kafka_message_t>?, _ opaque: UnsafeMutableRawPointer?
) {
    guard let message, let slotPointer = message.pointee._private else { return }
    let slot = slotPointer.assumingMemoryBound(to: DeliveryTracker.Slot.self).pointee
    let error: KafkaError?
    if message.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR {
        error = nil
    } else {
        var kafkaError = KafkaError(message.pointee.err)
        if let handle, message.pointee.err == RD_KAFKA_RESP_ERR__FATAL {
            var buffer = [CChar](repeating: 0, count: 512)
            let code = rd_kafka_fatal_error(handle, &buffer, buffer.count)
            kafkaError = KafkaError(code, buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }, fatal: true)
        }
        error = kafkaError
    }
    slot.tracker.takeUnretainedValue().report(slot.index, error)
}

private func producerErrorCallback(
    _ handle: OpaquePointer?, _ code: Int32, _ reason: UnsafePointer<CChar>?, _ opaque: UnsafeMutableRawPointer?
) {
    guard let opaque else { return }
    let error = KafkaError(rd_kafka_resp_err_t(rawValue: code), reason.map { String(cString: $0) })
    Unmanaged<RDKafkaCallbackContext>.fromOpaque(opaque).takeUnretainedValue().producerError?(error)
}
