import Logging

/// List, then watch from the list's resourceVersion, for ever: the watch resumes from the last
/// resourceVersion it saw (an event's or a bookmark's) when the server ends it; a 410 Gone, as
/// the HTTP status or as an in-stream ERROR event, means that version is too old, and the
/// collection is listed again. Objects that disappeared while no watch ran are reported as
/// deleted after the list.
struct Informer: Sendable {
    let client: KubeClient
    let type: ResourceType
    let namespace: String?
    let labelSelector: String?
    let logger: Logger
    let metrics = OperatorMetrics()
    var watchTimeoutSeconds = 300
    var initialBackoff: Duration = .milliseconds(200)
    var maxBackoff: Duration = .seconds(30)
    /// Called for every object of a list and every watch event (not for bookmarks).
    let handle: @Sendable (WatchEvent.Kind, JSON) async -> Void

    struct Gone: Error {}

    static func key(_ object: JSON) -> String? {
        guard let name = object[path: ["metadata", "name"]]?.string else { return nil }
        return "\(object[path: ["metadata", "namespace"]]?.string ?? "")/\(name)"
    }

    func run() async {
        var known = Set<String>()
        var failures = 0
        while !Task.isCancelled {
            var resourceVersion: String
            do {
                let list = try await client.list(type, namespace: namespace, labelSelector: labelSelector)
                resourceVersion = list[path: ["metadata", "resourceVersion"]]?.string ?? "0"
                var seen = Set<String>()
                for item in list["items"]?.array ?? [] {
                    guard let key = Self.key(item) else { continue }
                    seen.insert(key)
                    await handle(.added, item)
                }
                for key in known.subtracting(seen) {
                    let parts = key.split(separator: "/", maxSplits: 1).map(String.init)
                    await handle(
                        .deleted, ["metadata": ["namespace": .string(parts[0]), "name": .string(parts.count > 1 ? parts[1] : "")]])
                }
                known = seen
                failures = 0
            } catch {
                failures += 1
                logger.warning("cannot list", metadata: ["resource": "\(type.plural)", "error": "\(error)"])
                try? await Task.sleep(for: backoff(failures))
                continue
            }
            // Watch until the version expires.
            watching: while !Task.isCancelled {
                do {
                    try await client.watch(
                        type, namespace: namespace, resourceVersion: resourceVersion, labelSelector: labelSelector,
                        timeoutSeconds: watchTimeoutSeconds
                    ) { event in
                        metrics.watchEvent(type.plural, event.type)
                        switch event.type {
                        case .error:
                            if event.object["code"]?.int == 410 { throw Gone() }
                            throw KubeError(status: event.object, fallbackCode: 0)
                        case .bookmark:
                            if let version = event.object[path: ["metadata", "resourceVersion"]]?.string { resourceVersion = version }
                        case .added, .modified, .deleted:
                            if let version = event.object[path: ["metadata", "resourceVersion"]]?.string { resourceVersion = version }
                            if let key = Self.key(event.object) {
                                if event.type == .deleted { known.remove(key) } else { known.insert(key) }
                            }
                            await handle(event.type, event.object)
                        }
                    }
                    failures = 0
                } catch is Gone {
                    logger.info("watch expired (410 in the stream); listing again", metadata: ["resource": "\(type.plural)"])
                    break watching
                } catch let error as KubeError where error.isGone {
                    logger.info("watch expired (410); listing again", metadata: ["resource": "\(type.plural)"])
                    break watching
                } catch is CancellationError {
                    return
                } catch {
                    failures += 1
                    logger.warning("watch failed; resuming", metadata: ["resource": "\(type.plural)", "error": "\(error)"])
                    try? await Task.sleep(for: backoff(failures))
                }
            }
            metrics.relist(type.plural)
        }
    }

    func backoff(_ failures: Int) -> Duration {
        var delay = initialBackoff
        for _ in 1..<max(1, failures) where delay < maxBackoff { delay *= 2 }
        return min(delay, maxBackoff)
    }
}
