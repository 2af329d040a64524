import SwitchyardCore

/// The postgres connector family. Registered by the executable when the `Postgres` trait is on.
public enum PostgresConnectors {
    public static let family = ConnectorFamily(
        name: "postgres",
        summary: "PostgreSQL target on libpq 15: parameterised multi-row INSERT or upsert, one transaction per batch",
        sources: [],
        targets: [PostgresTarget.kind],
        notes: [
            "postgres: rows failing on their data (SQLSTATE classes 22, 23, 54) are isolated by bisection and dead-lettered with the server's text; the rest of the batch is committed",
            "postgres: mode insert is not idempotent under redelivery; use mode upsert with conflictColumns",
        ]
    )
}
