import SwitchyardCore

/// The s3 connector family. Registered by the executable when the `S3` trait is on.
public enum S3Connectors {
    public static let family = ConnectorFamily(
        name: "s3",
        summary: "s3 connectors (not built yet)",
        sources: [],
        targets: []
    )
}
