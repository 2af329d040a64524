import CRdKafka
import Logging

/// A client of one cluster for topic administration: the partition count of every topic, a
/// topic's configuration (DescribeConfigs) and topic creation (CreateTopics). It never produces
/// or joins a group. Blocking and not thread-safe: used on one thread, then dropped.
final class RDKafkaTopicAdmin {
    private let handle: OpaquePointer
    private let context: RDKafkaCallbackContext
    private let queue: OpaquePointer
    /// Milliseconds each request may take.
    let timeoutMs: Int32

    init(properties: [(String, String)], logger: Logger, timeoutMs: Int32 = 10_000) throws(KafkaError) {
        self.timeoutMs = timeoutMs
        let config = RDKafkaConfig()
        try config.set(properties)
        context = RDKafkaCallbackContext(logger: logger)
        handle = try config.makeHandle(RD_KAFKA_PRODUCER, context: context)
        queue = rd_kafka_queue_new(handle)
    }

    deinit {
        rd_kafka_queue_destroy(queue)
        rd_kafka_destroy(handle)
        Unmanaged.passUnretained(context).release()
    }

    /// The partition count of every topic of the cluster. Asks for all topics: a request that
    /// names a topic would let a cluster that creates topics on demand create it.
    func partitionCounts() throws(KafkaError) -> [String: Int32] {
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let result = rd_kafka_metadata(handle, 1, nil, &metadata, timeoutMs)
        defer { if let metadata { rd_kafka_metadata_destroy(metadata) } }
        guard result == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else { throw KafkaError(result) }
        var counts: [String: Int32] = [:]
        for index in 0..<Int(metadata.pointee.topic_cnt) {
            let entry = metadata.pointee.topics[index]
            guard entry.err == RD_KAFKA_RESP_ERR_NO_ERROR, entry.partition_cnt > 0 else { continue }
            counts[String(cString: entry.topic)] = entry.partition_cnt
        }
        return counts
    }

    /// The configuration of `topic` as the cluster reports it (entries without a value left out).
    func configs(topic: String) throws(KafkaError) -> [String: String] {
        guard let resource = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic) else {
            throw KafkaError(RD_KAFKA_RESP_ERR__INVALID_ARG, "cannot describe topic '\(topic)'")
        }
        defer { rd_kafka_ConfigResource_destroy(resource) }
        let options = try adminOptions(RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS)
        defer { rd_kafka_AdminOptions_destroy(options) }
        var resources: [OpaquePointer?] = [resource]
        rd_kafka_DescribeConfigs(handle, &resources, 1, options, queue)
        let event = try awaitResult("DescribeConfigs")
        defer { rd_kafka_event_destroy(event) }
        guard let result = rd_kafka_event_DescribeConfigs_result(event) else {
            throw KafkaError(RD_KAFKA_RESP_ERR__FAIL, "DescribeConfigs gave no result")
        }
        var count = 0
        guard let described = rd_kafka_DescribeConfigs_result_resources(result, &count), count == 1, let first = described[0] else {
            throw KafkaError(RD_KAFKA_RESP_ERR__FAIL, "DescribeConfigs described \(count) resources, not 1")
        }
        let error = rd_kafka_ConfigResource_error(first)
        if error != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(error, rd_kafka_ConfigResource_error_string(first).map { String(cString: $0) })
        }
        var entryCount = 0
        var configs: [String: String] = [:]
        guard let entries = rd_kafka_ConfigResource_configs(first, &entryCount) else { return configs }
        for index in 0..<entryCount {
            guard let entry = entries[index], let value = rd_kafka_ConfigEntry_value(entry) else { continue }
            configs[String(cString: rd_kafka_ConfigEntry_name(entry))] = String(cString: value)
        }
        return configs
    }

    /// Creates `topic`; a replication factor of -1 takes the broker's default.
    func createTopic(_ topic: String, partitions: Int32, replicationFactor: Int32, configs: [(String, String)]) throws(KafkaError) {
        var text = [CChar](repeating: 0, count: 512)
        guard let newTopic = rd_kafka_NewTopic_new(topic, partitions, replicationFactor, &text, text.count) else {
            throw KafkaError(RD_KAFKA_RESP_ERR__INVALID_ARG, text.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
        }
        defer { rd_kafka_NewTopic_destroy(newTopic) }
        for (name, value) in configs {
            let set = rd_kafka_NewTopic_set_config(newTopic, name, value)
            if set != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(set, "config \(name)=\(value): \(String(cString: rd_kafka_err2str(set)))") }
        }
        let options = try adminOptions(RD_KAFKA_ADMIN_OP_CREATETOPICS)
        defer { rd_kafka_AdminOptions_destroy(options) }
        var topics: [OpaquePointer?] = [newTopic]
        rd_kafka_CreateTopics(handle, &topics, 1, options, queue)
        let event = try awaitResult("CreateTopics")
        defer { rd_kafka_event_destroy(event) }
        guard let result = rd_kafka_event_CreateTopics_result(event) else {
            throw KafkaError(RD_KAFKA_RESP_ERR__FAIL, "CreateTopics gave no result")
        }
        var count = 0
        guard let results = rd_kafka_CreateTopics_result_topics(result, &count), count == 1, let first = results[0] else {
            throw KafkaError(RD_KAFKA_RESP_ERR__FAIL, "CreateTopics answered for \(count) topics, not 1")
        }
        let error = rd_kafka_topic_result_error(first)
        if error != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(error, rd_kafka_topic_result_error_string(first).map { String(cString: $0) })
        }
    }

    private func adminOptions(_ operation: rd_kafka_admin_op_t) throws(KafkaError) -> OpaquePointer {
        guard let options = rd_kafka_AdminOptions_new(handle, operation) else {
            throw KafkaError(RD_KAFKA_RESP_ERR__INVALID_ARG, "this librdkafka has no admin options for the request")
        }
        var text = [CChar](repeating: 0, count: 512)
        _ = rd_kafka_AdminOptions_set_request_timeout(options, timeoutMs, &text, text.count)
        if operation == RD_KAFKA_ADMIN_OP_CREATETOPICS {
            _ = rd_kafka_AdminOptions_set_operation_timeout(options, timeoutMs, &text, text.count)
        }
        return options
    }

    /// The result event of the request just made (the queue holds nothing else); throws its
    /// request-level error.
    private func awaitResult(_ request: String) throws(KafkaError) -> OpaquePointer {
        guard let event = rd_kafka_queue_poll(queue, timeoutMs + 5000) else {
            throw KafkaError(RD_KAFKA_RESP_ERR__TIMED_OUT, "\(request) got no answer within \(timeoutMs + 5000) ms")
        }
        let error = rd_kafka_event_error(event)
        if error != RD_KAFKA_RESP_ERR_NO_ERROR {
            let message = rd_kafka_event_error_string(event).map { String(cString: $0) }
            rd_kafka_event_destroy(event)
            throw KafkaError(error, message)
        }
        return event
    }
}
