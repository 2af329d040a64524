import SwitchyardCore

/// The connectors that need no server: the `generate` source and the `stdout`, `file` and
/// `drop` targets. Used by the quickstart, the tests and the benchmarks.
public enum BuiltinConnectors {
    public static let family = ConnectorFamily(
        name: "builtin",
        summary: "connectors that need no server: a message generator and stdout, file and drop targets",
        sources: [GenerateSource.kind],
        targets: [StdoutTarget.kind, FileTarget.kind, DropTarget.kind]
    )
}
