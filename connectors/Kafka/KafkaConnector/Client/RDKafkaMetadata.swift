import CRdKafka

/// The topics of a cluster, from one metadata request for all of them. Asking for every topic
/// rather than a named one keeps a cluster that creates topics on demand from creating it.
enum RDKafkaMetadata {
    /// Each topic's partition count, or the error the cluster reports for that topic. Blocks up
    /// to `timeoutMs`; throws when the cluster does not answer.
    static func topics(_ handle: OpaquePointer, timeoutMs: Int32) throws(KafkaError) -> [String: Result<Int32, KafkaError>] {
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let result = rd_kafka_metadata(handle, 1, nil, &metadata, timeoutMs)
        defer { if let metadata { rd_kafka_metadata_destroy(metadata) } }
        guard result == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else { throw KafkaError(result) }
        var topics: [String: Result<Int32, KafkaError>] = [:]
        for index in 0..<Int(metadata.pointee.topic_cnt) {
            let entry = metadata.pointee.topics[index]
            topics[String(cString: entry.topic)] =
                entry.err == RD_KAFKA_RESP_ERR_NO_ERROR ? .success(entry.partition_cnt) : .failure(KafkaError(entry.err))
        }
        return topics
    }
}
