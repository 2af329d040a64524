import SwitchyardCore

/// The postgres connector family. Registered by the executable when the `Postgres` trait is on.
public enum PostgresConnectors {
    public static let family = ConnectorFamily(
        name: "postgres",
        summary: "postgres connectors (not built yet)",
        sources: [],
        targets: []
    )
}
