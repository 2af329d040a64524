import Logging
import ServiceLifecycle
import SwitchyardConfig

/// Polls the document file and applies a changed document (hot reload).
///
/// Reads the file's content each interval, so a Kubernetes ConfigMap update (the kubelet swaps
/// a symlink) is seen like an edit in place. An invalid document is rejected and logged; the
/// running one stays.
public final class ConfigWatcher: Service {
    let path: String
    let loader: DocumentLoader
    let pipeline: Pipeline
    let interval: Duration
    let logger: Logger

    public init(path: String, loader: DocumentLoader, pipeline: Pipeline, initialText: String, interval: Duration = .seconds(1), logger: Logger) {
        self.path = path
        self.loader = loader
        self.pipeline = pipeline
        self.interval = interval
        self.logger = logger
        self.initial = initialText
    }

    let initial: String

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var last = self.initial
            while !Task.isCancelled {
                do { try await Task.sleep(for: self.interval) } catch { return }
                guard let text = Interpolator.readFileContents(self.path), text != last else { continue }
                last = text
                self.logger.info("document changed; validating", metadata: ["path": "\(self.path)"])
                switch self.loader.load(text) {
                case .success(let document):
                    do {
                        try await self.pipeline.apply(document)
                    } catch {
                        self.logger.error("new document could not be applied; the running document stays in force", metadata: ["error": "\(error)"])
                    }
                case .failure(let errors):
                    self.pipeline.rejected(errors)
                }
            }
        }
    }
}
