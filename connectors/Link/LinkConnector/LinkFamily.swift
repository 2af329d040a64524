import SwitchyardCore

/// The link connector family: one Switchyard process to another over gRPC. Registered by the
/// executable when the `Link` trait is on.
public enum LinkConnectors {
    public static let family = ConnectorFamily(
        name: "link",
        summary: "link source and target: runtime to runtime over gRPC (grpc-swift 2), with credits and end-to-end acknowledgements",
        sources: [LinkSource.kind],
        targets: [LinkTarget.kind],
        notes: [
            "at least once: after a reconnect everything unacknowledged is sent again; a receiver that restarted hands resent messages over again",
            "one stream per link target; the receiving side's message offset is the link sequence number",
        ]
    )
}
