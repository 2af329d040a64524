import CRdKafka
import Logging
import SwitchyardCore

/// A consumer `rd_kafka_t` that never joins its group: it asks for metadata, watermarks and
/// the group's committed offsets, reads partitions by offset (assign and poll), and commits
/// offsets for the group from outside it. Blocking and not thread-safe: used on one thread.
final class RDKafkaInspector {
    private let handle: OpaquePointer
    private let context: RDKafkaCallbackContext
    /// Milliseconds each blocking request may take.
    let timeoutMs: Int32

    /// - Parameter bulk: fetch for reading whole partitions (large fetches, deep prefetch)
    ///   rather than short probes.
    init(properties: [(String, String)], group: String, logger: Logger, bulk: Bool = false, timeoutMs: Int32 = 10_000) throws(KafkaError) {
        self.timeoutMs = timeoutMs
        let config = RDKafkaConfig()
        try config.set(properties)
        try config.set([
            ("group.id", group), ("enable.auto.commit", "false"), ("enable.auto.offset.store", "false"),
            ("allow.auto.create.topics", "false"), ("auto.offset.reset", "error"), ("enable.partition.eof", "true"),
        ])
        if bulk {
            try config.set([("fetch.wait.max.ms", "10"), ("queued.max.messages.kbytes", "65536"), ("queued.min.messages", "100000")])
        } else {
            // Short fetches: a probe wants a few records, not a prefetched megabyte. The queue
            // thresholds stay high: what a probe leaves unread in the queue must not count as a
            // full queue, which makes librdkafka 2.0 pause the partition's fetches for a second
            // (measured: 0.7 s per probe with queued.min.messages 64).
            try config.set([
                ("fetch.wait.max.ms", "10"), ("fetch.message.max.bytes", "65536"), ("queued.max.messages.kbytes", "65536"),
                ("queued.min.messages", "100000"),
            ])
        }
        context = RDKafkaCallbackContext(logger: logger)
        handle = try config.makeHandle(RD_KAFKA_CONSUMER, context: context)
        rd_kafka_poll_set_consumer(handle)
    }

    deinit {
        _ = rd_kafka_assign(handle, nil)
        rd_kafka_consumer_close(handle)
        rd_kafka_destroy(handle)
        Unmanaged.passUnretained(context).release()
    }

    /// The partition count of `topic`; throws `UNKNOWN_TOPIC_OR_PART` when the cluster does
    /// not have it (see ``RDKafkaMetadata``).
    func partitionCount(topic: String) throws(KafkaError) -> Int32 {
        switch try RDKafkaMetadata.topics(handle, timeoutMs: timeoutMs)[topic] {
        case .success(let count)? where count > 0: return count
        case .failure(let error)?: throw error
        default: throw KafkaError(RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
        }
    }

    /// The log start and end (high watermark) of a partition, asked of its leader.
    func watermarks(topic: String, partition: Int32) throws(KafkaError) -> (start: Int64, end: Int64) {
        var low: Int64 = -1
        var high: Int64 = -1
        let result = rd_kafka_query_watermark_offsets(handle, topic, partition, &low, &high, timeoutMs)
        if result != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(result) }
        return (low, high)
    }

    /// The group's committed offsets of `topic`'s partitions `0..<count`; a partition without
    /// one is absent.
    func committed(topic: String, count: Int32) throws(KafkaError) -> [Int32: Int64] {
        let list = RDKafkaTopicPartitionList(capacity: Int(count))
        for partition in 0..<count { list.add(TopicPartition(topic: topic, partition: partition)) }
        let result = rd_kafka_committed(handle, list.pointer, timeoutMs)
        if result != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(result) }
        var offsets: [Int32: Int64] = [:]
        for entry in list.entries {
            if let error = entry.error { throw error }
            if entry.offset >= 0 { offsets[entry.partition.partition] = entry.offset }
        }
        return offsets
    }

    /// Commits `offsets` (the next offset to read) for the group, synchronously, as a client
    /// outside the group (generation -1): a broker refuses that while the group has members.
    func commit(topic: String, offsets: [Int32: Int64]) throws(KafkaError) {
        guard !offsets.isEmpty else { return }
        let list = RDKafkaTopicPartitionList(capacity: offsets.count)
        for (partition, offset) in offsets.sorted(by: { $0.key < $1.key }) {
            list.add(TopicPartition(topic: topic, partition: partition), offset: offset)
        }
        let result = rd_kafka_commit(handle, list.pointer, 0)
        if result != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(result) }
        if let failed = list.entries.first(where: { $0.error != nil }) { throw failed.error! }
    }

    /// Up to `limit` records of a partition from `offset` on, with the source positions their
    /// headers name; stops early at `end` (the high watermark the caller saw).
    func read(topic: String, partition: Int32, from offset: Int64, limit: Int, end: Int64) throws(KafkaError) -> [PositionedRecord] {
        guard offset < end, limit > 0 else { return [] }
        let list = RDKafkaTopicPartitionList(capacity: 1)
        list.add(TopicPartition(topic: topic, partition: partition), offset: offset)
        let assigned = rd_kafka_assign(handle, list.pointer)
        if assigned != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(assigned) }
        defer { _ = rd_kafka_assign(handle, nil) }
        var records: [PositionedRecord] = []
        var waited: Int32 = 0
        while records.count < limit {
            guard let raw = rd_kafka_consumer_poll(handle, 100) else {
                waited += 100
                if waited >= timeoutMs {
                    throw KafkaError(
                        RD_KAFKA_RESP_ERR__TIMED_OUT, "no record of \(topic)[\(partition)] at offset \(offset) within \(timeoutMs) ms")
                }
                continue
            }
            defer { rd_kafka_message_destroy(raw) }
            let message = raw.pointee
            guard message.partition == partition, let rkt = message.rkt, String(cString: rd_kafka_topic_name(rkt)) == topic else {
                continue
            }
            if message.err == RD_KAFKA_RESP_ERR__PARTITION_EOF { break }
            if message.err != RD_KAFKA_RESP_ERR_NO_ERROR {
                throw KafkaError(message.err, "reading \(topic)[\(partition)] at offset \(offset)")
            }
            guard message.offset >= offset, message.offset >= (records.last?.offset ?? -1) + 1 else { continue }
            records.append(PositionedRecord(offset: message.offset, source: Self.sourcePosition(raw)))
            if message.offset + 1 >= end { break }
        }
        return records
    }

    /// Reads `[from, to)` of a partition in order, calling `body` with each record's offset,
    /// its ``RecordDigest`` hash and, when `cluster` and `topic` are given, its position
    /// relative to them. Payloads are hashed in place (not copied).
    /// `headers`: the headers whose values the hash covers besides key and value.
    func scan(
        topic: String, partition: Int32, from: Int64, to: Int64, positionsOf source: (cluster: String, topic: String)?,
        headers: [String] = [], _ body: (Int64, UInt64, RecordOrigin) -> Void
    ) throws(KafkaError) {
        let cluster = source.map { Array($0.cluster.utf8) }
        let sourceTopic = source.map { Array($0.topic.utf8) }
        try read(topic: topic, partition: partition, from: from, to: to) { raw in
            let message = raw.pointee
            let key = message.key.map { UnsafeRawBufferPointer(start: $0, count: message.key_len) }
            let value = UnsafeRawBufferPointer(start: message.payload, count: message.payload == nil ? 0 : message.len)
            let hash =
                headers.isEmpty
                ? RecordDigest.hash(key: key, value: value)
                : RecordDigest.hash(key: key, value: value, headers: Self.headerValues(raw, headers))
            var position = RecordOrigin.none
            if let cluster, let sourceTopic { position = Self.scannedPosition(raw, cluster: cluster, topic: sourceTopic) }
            body(message.offset, hash, position)
        }
    }

    /// Calls `body` with each record of `[from, to)` as a ``Message``, in offset order.
    func scanMessages(topic: String, partition: Int32, from: Int64, to: Int64, _ body: (Message) throws -> Void) throws {
        var failure: (any Error)?
        try read(topic: topic, partition: partition, from: from, to: to) { raw in
            guard failure == nil else { return }
            do { try body(RDKafkaConsumer.message(raw, topic: topic)) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// Reads `[from, to)` of a partition by assigning it, calling `body` with each record.
    private func read(topic: String, partition: Int32, from: Int64, to: Int64, _ body: (UnsafeMutablePointer<rd_kafka_message_t>) -> Void)
        throws(KafkaError)
    {
        guard from < to else { return }
        let list = RDKafkaTopicPartitionList(capacity: 1)
        list.add(TopicPartition(topic: topic, partition: partition), offset: from)
        let assigned = rd_kafka_assign(handle, list.pointer)
        if assigned != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(assigned) }
        defer { _ = rd_kafka_assign(handle, nil) }
        var next = from
        var waited: Int32 = 0
        while next < to {
            guard let raw = rd_kafka_consumer_poll(handle, 100) else {
                waited += 100
                if waited >= timeoutMs {
                    throw KafkaError(
                        RD_KAFKA_RESP_ERR__TIMED_OUT, "no record of \(topic)[\(partition)] at offset \(next) within \(timeoutMs) ms")
                }
                continue
            }
            waited = 0
            defer { rd_kafka_message_destroy(raw) }
            let message = raw.pointee
            guard message.partition == partition else { continue }
            if message.err == RD_KAFKA_RESP_ERR__PARTITION_EOF { break }
            if message.err != RD_KAFKA_RESP_ERR_NO_ERROR {
                throw KafkaError(message.err, "reading \(topic)[\(partition)] at offset \(next)")
            }
            guard message.offset >= next else { continue }
            if message.offset >= to { break }
            next = message.offset + 1
            body(raw)
        }
    }

    /// The last value of each named header of a message (nil when absent), pointing into it.
    private static func headerValues(_ message: UnsafeMutablePointer<rd_kafka_message_t>, _ names: [String]) -> [UnsafeRawBufferPointer?] {
        var headers: OpaquePointer?
        guard rd_kafka_message_headers(message, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR, let headers else { return names.map { _ in nil } }
        return names.map { name in
            var value: UnsafeRawPointer?
            var size = 0
            guard rd_kafka_header_get_last(headers, name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
            return UnsafeRawBufferPointer(start: value, count: value == nil ? 0 : size)
        }
    }

    private static func scannedPosition(_ message: UnsafeMutablePointer<rd_kafka_message_t>, cluster: [UInt8], topic: [UInt8])
        -> RecordOrigin
    {
        var headers: OpaquePointer?
        guard rd_kafka_message_headers(message, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR, let headers else { return .none }
        func bytes(_ name: String) -> UnsafeRawBufferPointer? {
            var value: UnsafeRawPointer?
            var size = 0
            guard rd_kafka_header_get_last(headers, name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
            return UnsafeRawBufferPointer(start: value, count: value == nil ? 0 : size)
        }
        func number(_ buffer: UnsafeRawBufferPointer) -> Int64? {
            guard !buffer.isEmpty, buffer.count <= 19 else { return nil }
            var result: Int64 = 0
            for byte in buffer {
                guard byte >= 48 && byte <= 57 else { return nil }
                result = result * 10 + Int64(byte - 48)
            }
            return result
        }
        guard let clusterBytes = bytes(SourcePosition.clusterHeader), let topicBytes = bytes(SourcePosition.topicHeader),
            let partitionBytes = bytes(SourcePosition.partitionHeader), let offsetBytes = bytes(SourcePosition.offsetHeader),
            let partition = number(partitionBytes), partition <= Int64(Int32.max), let offset = number(offsetBytes)
        else { return .none }
        guard clusterBytes.elementsEqual(cluster), topicBytes.elementsEqual(topic) else { return .other }
        return .position(partition: Int32(partition), offset: offset)
    }

    private static func sourcePosition(_ message: UnsafeMutablePointer<rd_kafka_message_t>) -> SourcePosition? {
        var headers: OpaquePointer?
        guard rd_kafka_message_headers(message, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR, let headers else { return nil }
        var found: [Header] = []
        for name in [SourcePosition.clusterHeader, SourcePosition.topicHeader, SourcePosition.partitionHeader, SourcePosition.offsetHeader]
        {
            var value: UnsafeRawPointer?
            var size = 0
            guard rd_kafka_header_get_last(headers, name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
            found.append(Header(name: name, value: value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? []))
        }
        return SourcePosition(headers: found)
    }
}
