/// The metric names Switchyard exports (all start with `switchyard_`).
public enum MetricNames {
    public static let sourceMessages = "switchyard_source_messages_total"
    public static let sourceBytes = "switchyard_source_bytes_total"
    public static let sourceFiltered = "switchyard_source_filtered_messages_total"
    public static let sourceAcknowledged = "switchyard_source_acknowledged_messages_total"
    /// Labels `source`, `reason` (`origin`, `max_hops`): skipped by the provenance rules.
    public static let sourceSkipped = "switchyard_source_skipped_messages_total"
    /// Submitted by the source and not yet acknowledged to it.
    public static let sourceInflight = "switchyard_source_inflight_messages"
    /// Messages waiting in the source system, not yet fetched (Kafka: high watermark minus the
    /// next offset fetched; RabbitMQ: the queue's ready messages).
    public static let sourceBacklog = "switchyard_source_backlog_messages"
    /// Backlog plus in-flight: how far the targets are behind the source system.
    public static let bridgeLag = "switchyard_bridge_lag_messages"
    /// Labels `target`, `outcome` (`written`, `retried`, `dead_lettered`).
    public static let targetMessages = "switchyard_target_messages_total"
    public static let targetBytes = "switchyard_target_bytes_total"
    public static let targetBatchMessages = "switchyard_target_batch_messages"
    public static let targetWriteSeconds = "switchyard_target_write_seconds"
    public static let targetPaused = "switchyard_target_paused"
    public static let targetStopped = "switchyard_target_stopped"
    public static let targetQueueMessages = "switchyard_target_queue_messages"
    public static let inflightMessages = "switchyard_inflight_messages"
    public static let inflightBytes = "switchyard_inflight_bytes"
    public static let memoryLimitBytes = "switchyard_memory_limit_bytes"
    public static let memoryUsedBytes = "switchyard_memory_used_bytes"
    public static let memoryWaits = "switchyard_memory_waits_total"
    public static let oldestUnackedSeconds = "switchyard_oldest_unacked_age_seconds"
    public static let connectionUp = "switchyard_connection_up"
    public static let configGeneration = "switchyard_config_generation"
    public static let configReloads = "switchyard_config_reloads_total"
    public static let draining = "switchyard_draining"
    /// 1 when `/readyz` answers 200, else 0 (sampled at each scrape).
    public static let ready = "switchyard_ready"
}
