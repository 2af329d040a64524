import CRdKafka
import Logging

/// A client of one cluster for topic administration: the partition count of every topic, a
/// topic's configuration (DescribeConfigs) and topic creation (CreateTopics); and the state of
/// a consumer group (DescribeConsumerGroups). It never produces
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

    /// The partition count of every topic of the cluster (see ``RDKafkaMetadata``); topics the
    /// cluster reports an error for are left out.
    func partitionCounts() throws(KafkaError) -> [String: Int32] {
        try RDKafkaMetadata.topics(handle, timeoutMs: timeoutMs).compactMapValues { result in
            guard case .success(let count) = result, count > 0 else { return nil }
            return count
        }
    }

    /// The configuration of `topic` as the cluster reports it (entries without a value left out).
    func configs(topic: String) throws(KafkaError) -> [String: String] {
        guard let resource = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic) else {
            throw KafkaError(RD_KAFKA_RESP_ERR__INVALID_ARG, "cannot describe topic '\(topic)'")
        }
        defer { rd_kafka_ConfigResource_destroy(resource) }
        let event = try request(
            "DescribeConfigs", RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS, answer: { rd_kafka_event_DescribeConfigs_result($0) != nil }
        ) { options in
            var resources: [OpaquePointer?] = [resource]
            rd_kafka_DescribeConfigs(handle, &resources, 1, options, queue)
        }
        defer { rd_kafka_event_destroy(event) }
        var count = 0
        let first = try Self.only(
            rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(event), &count), count, "DescribeConfigs")
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
            if set != RD_KAFKA_RESP_ERR_NO_ERROR {
                throw KafkaError(set, "config \(name)=\(value): \(String(cString: rd_kafka_err2str(set)))")
            }
        }
        let event = try request("CreateTopics", RD_KAFKA_ADMIN_OP_CREATETOPICS, answer: { rd_kafka_event_CreateTopics_result($0) != nil }) {
            options in
            var topics: [OpaquePointer?] = [newTopic]
            rd_kafka_CreateTopics(handle, &topics, 1, options, queue)
        }
        defer { rd_kafka_event_destroy(event) }
        var count = 0
        let first = try Self.only(
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event), &count), count, "CreateTopics")
        let error = rd_kafka_topic_result_error(first)
        if error != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(error, rd_kafka_topic_result_error_string(first).map { String(cString: $0) })
        }
    }

    /// What the cluster's group coordinator says of `group` (DescribeConsumerGroups, asked of
    /// the coordinator directly, so a group the broker's ListGroups has not caught up with is
    /// still seen); nil when the cluster does not answer the request (librdkafka's mock cluster).
    func describe(group: String) throws(KafkaError) -> GroupDescription? {
        // A cluster without ListGroups (the mock cluster) is not asked DescribeConsumerGroups:
        // librdkafka 2.0 aborts on an assertion when that request goes unanswered there.
        var groupList: UnsafePointer<rd_kafka_group_list>?
        let listed = rd_kafka_list_groups(handle, group, &groupList, timeoutMs)
        if let groupList { rd_kafka_group_list_destroy(groupList) }
        if listed == RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE { return nil }
        let event: OpaquePointer
        do {
            event = try request(
                "DescribeConsumerGroups", RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS,
                answer: { rd_kafka_event_DescribeConsumerGroups_result($0) != nil }
            ) { options in
                var groups: [UnsafePointer<CChar>?] = []
                group.withCString { name in
                    groups = [name]
                    rd_kafka_DescribeConsumerGroups(handle, &groups, 1, options, queue)
                }
            }
        } catch  where GroupDescription.unanswered(error.code.c) {
            return nil
        }
        defer { rd_kafka_event_destroy(event) }
        var count = 0
        let list = rd_kafka_DescribeConsumerGroups_result_groups(rd_kafka_event_DescribeConsumerGroups_result(event), &count)
        guard let list, count == 1, let first = list[0] else {
            throw KafkaError(RD_KAFKA_RESP_ERR__FAIL, "DescribeConsumerGroups answered for \(count) groups, not 1")
        }
        if let error = rd_kafka_ConsumerGroupDescription_error(first) {
            let code = rd_kafka_error_code(error)
            if GroupDescription.unanswered(code) { return nil }
            if code != RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND {
                throw KafkaError(code, rd_kafka_error_string(error).map { String(cString: $0) })
            }
            return GroupDescription(state: RD_KAFKA_CONSUMER_GROUP_STATE_DEAD, members: 0)
        }
        return GroupDescription(
            state: rd_kafka_ConsumerGroupDescription_state(first), members: rd_kafka_ConsumerGroupDescription_member_count(first))
    }

    /// Sends one request with its options (`send` gets them and puts the request on `queue`)
    /// and returns its result event (the first event for which `answer` holds: the late answer
    /// of an earlier request that timed out is dropped), which the caller destroys. Throws the
    /// request-level error.
    private func request(_ name: String, _ operation: rd_kafka_admin_op_t, answer: (OpaquePointer) -> Bool, send: (OpaquePointer) -> Void)
        throws(KafkaError) -> OpaquePointer
    {
        let options = try adminOptions(operation)
        defer { rd_kafka_AdminOptions_destroy(options) }
        send(options)
        let deadline = ContinuousClock.now + .milliseconds(Int(timeoutMs) + 5000)
        while true {
            let left = deadline - ContinuousClock.now
            let wait = Int32(max(0, left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000))
            guard wait > 0, let event = rd_kafka_queue_poll(queue, wait) else {
                throw KafkaError(RD_KAFKA_RESP_ERR__TIMED_OUT, "\(name) got no answer within \(timeoutMs + 5000) ms")
            }
            guard answer(event) else {
                rd_kafka_event_destroy(event)
                continue
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

    /// The one entry of the result of a request about one resource.
    private static func only(_ list: UnsafeMutablePointer<OpaquePointer?>?, _ count: Int, _ request: String) throws(KafkaError)
        -> OpaquePointer
    {
        guard let list, count == 1, let first = list[0] else {
            throw KafkaError(RD_KAFKA_RESP_ERR__FAIL, "\(request) answered for \(count) resources, not 1")
        }
        return first
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
}

/// A consumer group as its coordinator describes it.
struct GroupDescription: Equatable {
    let state: rd_kafka_consumer_group_state_t
    let members: Int

    /// Whether a generation of the group is alive: members listed, or a state that only a group
    /// with members is in. Some brokers (tansu) report a stable group without listing its
    /// members, so the state counts as well as the list.
    var isActive: Bool {
        members > 0
            || state == RD_KAFKA_CONSUMER_GROUP_STATE_STABLE
            || state == RD_KAFKA_CONSUMER_GROUP_STATE_PREPARING_REBALANCE
            || state == RD_KAFKA_CONSUMER_GROUP_STATE_COMPLETING_REBALANCE
    }

    /// The state's name as the broker spells it (Stable, Empty, ...).
    var stateName: String { String(cString: rd_kafka_consumer_group_state_name(state)) }

    /// Whether `code` means the cluster does not serve the request at all.
    static func unanswered(_ code: rd_kafka_resp_err_t) -> Bool {
        code == RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE || code == RD_KAFKA_RESP_ERR_UNSUPPORTED_VERSION
            || code == RD_KAFKA_RESP_ERR_INVALID_REQUEST
    }
}
