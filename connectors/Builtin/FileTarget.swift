#if canImport(Glibc)
    import Glibc
#endif
import Logging
import Synchronization
import SwitchyardCore

/// Writes bytes to a file descriptor on the target's own queue.
final class FileSink: Sendable {
    let descriptor: Int32
    let sync: Bool
    let io: BlockingQueue
    let path: String

    init(path: String, descriptor: Int32, sync: Bool, label: String) {
        self.path = path
        self.descriptor = descriptor
        self.sync = sync
        self.io = BlockingQueue(label: label)
    }

    /// Appends `bytes` and, when asked, fsyncs; errors are retriable (a full disk may clear).
    func write(_ bytes: [UInt8]) async throws {
        let descriptor = self.descriptor
        let sync = self.sync
        let path = self.path
        try await io.run { () throws -> Void in
            var written = 0
            while written < bytes.count {
                let result = bytes.withUnsafeBytes { buffer in
                    Glibc.write(descriptor, buffer.baseAddress! + written, buffer.count - written)
                }
                if result < 0 {
                    let code = errno
                    if code == EINTR { continue }
                    throw ConnectorError.retriable("write to \(path) failed: \(String(cString: strerror(code)))")
                }
                written += result
            }
            if sync && fsync(descriptor) != 0 {
                let code = errno
                if code != EINVAL && code != EROFS {
                    throw ConnectorError.retriable("fsync of \(path) failed: \(String(cString: strerror(code)))")
                }
            }
        }
    }
}

/// The `file` target: appends NDJSON lines, one per message, and fsyncs each batch before
/// confirming it.
final class FileTarget: Target {
    static let kind = TargetKind(
        kind: "file",
        summary:
            "appends one NDJSON line per message (key, value, headers, channel, partition, offset, timestamp) to a file; fsync per batch",
        options: ObjectSchema(
            doc: "Appends NDJSON lines to a file.",
            [
                OptionField("path", .string, required: true, doc: "file to append to; created when missing"),
                OptionField("fsync", .bool, default: "true", doc: "fsync after every batch, before the batch is confirmed"),
            ] + FailureInjection.fields),
        validate: { options in
            options.string("path")?.isEmpty == true ? [options.issue("path", "must not be empty")] : []
        },
        make: { setup in FileTarget(setup) }
    )

    let path: String
    let sync: Bool
    let failures: FailureInjection
    let name: String
    let sink = Mutex<FileSink?>(nil)

    init(_ setup: ConnectorSetup) {
        path = setup.options.string("path") ?? ""
        sync = setup.options.bool("fsync") ?? true
        failures = FailureInjection(setup.options)
        name = setup.name
    }

    func open() async throws {
        let descriptor = Glibc.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        if descriptor < 0 {
            let code = errno
            let message = "cannot open \(path): \(String(cString: strerror(code)))"
            throw code == EACCES || code == ENOENT || code == EISDIR
                ? ConnectorError.targetDown(message) : ConnectorError.retriable(message)
        }
        sink.withLock { $0 = FileSink(path: path, descriptor: descriptor, sync: sync, label: "switchyard.file.\(name)") }
    }

    func write(_ messages: [Message]) async throws -> WriteResult {
        let failed = try await failures.apply(to: messages)
        guard let sink = sink.withLock({ $0 }) else { throw ConnectorError.retriable("file \(path) is not open") }
        var output: [UInt8] = []
        output.reserveCapacity(messages.count * 160)
        var next = 0
        for (index, message) in messages.enumerated() {
            if next < failed.count && failed[next].index == index {
                next += 1
                continue
            }
            NDJSONLine.append(message, to: &output)
        }
        try await sink.write(output)
        return WriteResult(failures: failed)
    }

    func close() async {
        let sink = sink.withLock { sink in
            defer { sink = nil }
            return sink
        }
        if let sink { _ = Glibc.close(sink.descriptor) }
    }
}

/// The `stdout` target: writes each message to standard output, as NDJSON or as its value.
final class StdoutTarget: Target {
    static let kind = TargetKind(
        kind: "stdout",
        summary: "writes messages to standard output, as NDJSON lines or raw values",
        options: ObjectSchema(
            doc: "Writes to standard output.",
            [
                OptionField(
                    "format", .choice(["ndjson", "value"]), default: "ndjson",
                    doc: "ndjson: one JSON object per message; value: the value followed by a newline")
            ]),
        make: { setup in StdoutTarget(setup) }
    )

    let format: String
    let sink: FileSink

    init(_ setup: ConnectorSetup) {
        format = setup.options.string("format") ?? "ndjson"
        sink = FileSink(path: "standard output", descriptor: 1, sync: false, label: "switchyard.stdout.\(setup.name)")
    }

    func write(_ messages: [Message]) async throws -> WriteResult {
        var output: [UInt8] = []
        for message in messages {
            if format == "value" {
                output.append(contentsOf: message.value)
                output.append(0x0A)
            } else {
                NDJSONLine.append(message, to: &output)
            }
        }
        try await sink.write(output)
        return .allWritten
    }
}
