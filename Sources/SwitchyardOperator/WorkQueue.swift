import DequeModule

/// Keys (`namespace/name`) waiting to be reconciled. A key is queued at most once; a key added
/// while a worker holds it is queued again when that worker is done, so one key is never
/// reconciled by two workers at once and no change is lost. Failed keys come back after an
/// exponential backoff.
actor WorkQueue {
    private var queue = Deque<String>()
    private var queued = Set<String>()
    private var processing = Set<String>()
    private var dirty = Set<String>()
    private var failures: [String: Int] = [:]
    private var waiters: [CheckedContinuation<String?, Never>] = []
    private var delayed: [Int: Task<Void, Never>] = [:]
    private var nextDelayed = 0
    private var isShutDown = false
    let initialBackoff: Duration
    let maxBackoff: Duration
    let onDepthChange: @Sendable (Int) -> Void

    init(initialBackoff: Duration, maxBackoff: Duration, onDepthChange: @escaping @Sendable (Int) -> Void = { _ in }) {
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
        self.onDepthChange = onDepthChange
    }

    var depth: Int { queue.count }

    func add(_ key: String) {
        guard !isShutDown, !queued.contains(key) else { return }
        if processing.contains(key) {
            dirty.insert(key)
            return
        }
        if !waiters.isEmpty {
            processing.insert(key)
            waiters.removeFirst().resume(returning: key)
            return
        }
        queued.insert(key)
        queue.append(key)
        onDepthChange(queue.count)
    }

    /// The next key to work on; nil once the queue is shut down.
    func next() async -> String? {
        if isShutDown { return nil }
        if let key = queue.popFirst() {
            queued.remove(key)
            processing.insert(key)
            onDepthChange(queue.count)
            return key
        }
        return await withCheckedContinuation { waiters.append($0) }
    }

    /// The worker finished `key`. `failed`: bring it back after the backoff.
    func done(_ key: String, failed: Bool) {
        processing.remove(key)
        if failed {
            let attempts = (failures[key] ?? 0) + 1
            failures[key] = attempts
            addAfter(key, delay: backoff(attempts: attempts))
        } else {
            failures[key] = nil
        }
        if dirty.remove(key) != nil { add(key) }
    }

    func backoff(attempts: Int) -> Duration {
        var delay = initialBackoff
        for _ in 1..<max(attempts, 1) {
            delay *= 2
            if delay >= maxBackoff { return maxBackoff }
        }
        return min(delay, maxBackoff)
    }

    func failureCount(_ key: String) -> Int { failures[key] ?? 0 }

    func addAfter(_ key: String, delay: Duration) {
        guard !isShutDown else { return }
        let id = nextDelayed
        nextDelayed += 1
        delayed[id] = Task {
            try? await Task.sleep(for: delay)
            guard !Task.isCancelled else { return }
            self.fire(id: id, key: key)
        }
    }

    private func fire(id: Int, key: String) {
        delayed[id] = nil
        add(key)
    }

    /// Wakes every waiting worker with nil and drops what is queued.
    func shutDown() {
        isShutDown = true
        for task in delayed.values { task.cancel() }
        delayed.removeAll()
        queue.removeAll()
        queued.removeAll()
        for waiter in waiters { waiter.resume(returning: nil) }
        waiters.removeAll()
        onDepthChange(0)
    }
}
