import SwitchyardCore

/// The redis connector family. Registered by the executable when the `Redis` trait is on.
public enum RedisConnectors {
    public static let family = ConnectorFamily(
        name: "redis",
        summary: "redis connectors (not built yet)",
        sources: [],
        targets: []
    )
}
