import SwitchyardCore

/// The redis connector family. Registered by the executable when the `Redis` trait is on.
public enum RedisConnectors {
    public static let family = ConnectorFamily(
        name: "redis",
        summary: "Redis target on hiredis 0.14: one command per message, a batch per pipeline",
        sources: [],
        targets: [RedisTarget.kind],
        notes: [
            "hiredis 0.14 has no TLS: rediss:// URLs are rejected when the document is validated",
            "no Redis Cluster (MOVED/ASK answers pause the route) and no RESP3",
        ]
    )
}
