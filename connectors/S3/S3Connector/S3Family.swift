import SwitchyardCore

/// The s3 connector family: the `s3` target on libcurl. Registered by the executable when the
/// `S3` trait is on.
public enum S3Connectors {
    public static let family = ConnectorFamily(
        name: "s3",
        summary: "s3 target on libcurl (SigV4 signing by libcurl, payload hash computed here)",
        sources: [],
        targets: [S3Target.kind],
        notes: [
            "s3: one object (or several, split by maxObjectBytes) per flushed write batch; the wall-clock age of an object is bounded by the target's batching.maxDelay",
            "s3: object keys derive from channel, partition and the first and last offsets, so a redelivered batch overwrites its object",
            "s3: \(S3Curl.version) signs with CURLOPT_AWS_SIGV4; x-amz-content-sha256 is computed and sent by the connector",
        ]
    )
}
