import Synchronization

/// Work that runs at the start of every `/metrics` scrape, so that gauges whose value depends
/// on state that changes between scrapes (a consumer's lag, which moves with every
/// acknowledgement) are exact when read, not as of the last periodic update.
///
/// A hook must be quick and must not block: it runs on the HTTP server's thread.
public final class ScrapeHooks: Sendable {
    public static let shared = ScrapeHooks()

    let hooks = Mutex<[UInt64: @Sendable () -> Void]>([:])
    let nextID = Atomic<UInt64>(1)

    public init() {}

    /// Adds `hook`; the returned identity removes it.
    public func add(_ hook: @escaping @Sendable () -> Void) -> UInt64 {
        let id = nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        hooks.withLock { $0[id] = hook }
        return id
    }

    public func remove(_ id: UInt64) {
        _ = hooks.withLock { $0.removeValue(forKey: id) }
    }

    /// Runs every hook, outside the lock (a hook may add or remove hooks).
    public func run() {
        let current = hooks.withLock { Array($0.values) }
        for hook in current { hook() }
    }
}
