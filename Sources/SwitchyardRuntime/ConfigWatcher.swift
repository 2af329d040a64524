#if canImport(Glibc)
    import Glibc
#endif
import Logging
import ServiceLifecycle
import SwitchyardConfig
import SwitchyardCore

/// Polls the document file and applies a changed document (hot reload).
///
/// Every interval the watcher opens the path it was given afresh (following symlinks) and
/// compares the whole content with the last document it saw. It keeps no descriptor, inode or
/// directory watch, so every way of replacing the document is seen the same way: an edit in
/// place, an editor's write-and-rename, and a Kubernetes ConfigMap update, where the kubelet
/// writes a new `..<timestamp>` directory, renames a `..data_tmp` symlink over `..data` and
/// removes the old directory while `connector.yaml -> ..data/connector.yaml` never changes.
/// Each rename is atomic, so a read sees either the old or the new document, never a mixture.
///
/// An invalid document is rejected, logged with the file and every error, counted in
/// `switchyard_config_reloads_total{result="rejected"}`, and the running one stays; the same
/// content is not tried again until it changes.
public final class ConfigWatcher: Service {
    let path: String
    let loader: DocumentLoader
    let pipeline: Pipeline
    let interval: Duration
    let logger: Logger
    let initial: String
    /// Reading the file and validating it block (disk, `${file:...}` reads, parsing up to the
    /// document limits): they run here, not on Swift's cooperative pool.
    let io = BlockingQueue(label: "switchyard.config-watcher")

    public init(
        path: String, loader: DocumentLoader, pipeline: Pipeline, initialText: String, interval: Duration = .seconds(1), logger: Logger
    ) {
        self.path = path
        self.loader = loader
        self.pipeline = pipeline
        self.interval = interval
        self.logger = logger
        self.initial = initialText
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var last = self.initial
            var unreadable = false
            while !Task.isCancelled {
                do { try await Task.sleep(for: self.interval) } catch { return }
                let path = self.path
                let read = await self.io.run { Interpolator.readDocument(path) }
                guard case .success(let text) = read else {
                    // Logged once per state change; the running document stays.
                    if !unreadable, case .failure(let failure) = read {
                        unreadable = true
                        self.logger.warning(
                            "document cannot be read; the running document stays in force",
                            metadata: ["file": "\(self.path)", "error": "\(failure)"])
                    }
                    continue
                }
                if unreadable {
                    unreadable = false
                    self.logger.info("document readable again", metadata: ["file": "\(self.path)"])
                }
                guard text != last else { continue }
                last = text
                self.logger.info(
                    "document changed; validating", metadata: ["file": "\(self.path)", "resolved": "\(Self.resolve(self.path))"])
                let loader = self.loader
                switch await self.io.run({ loader.load(text) }) {
                case .success(let document):
                    do {
                        try await self.pipeline.apply(document)
                    } catch {
                        self.pipeline.applyFailed(error, file: self.path)
                    }
                case .failure(let errors):
                    self.pipeline.rejected(errors, file: self.path)
                }
            }
        }
    }

    /// The path with every symlink resolved (for a ConfigMap, the file in the current
    /// `..<timestamp>` directory), or the path itself if it cannot be resolved.
    static func resolve(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
