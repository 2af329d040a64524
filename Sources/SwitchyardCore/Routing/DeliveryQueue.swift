import DequeModule
import Synchronization

/// The bounded queue of one target lane: many producers (the router), one consumer (the lane's
/// worker).
///
/// `push` suspends while the queue holds `capacity` messages (backpressure towards the
/// sources). `take` assembles a batch by the target's ``BatchingPolicy``; after `flush()`
/// (shutdown) it stops waiting for `maxDelay` and hands over partial batches at once.
final class DeliveryQueue: Sendable {
    struct State {
        var items = Deque<Delivery>()
        var messages = 0
        var closed = false
        var flushing = false
        /// Waiting producers; resumed with `false` when room was reserved for them.
        var producers = Deque<(count: Int, continuation: CheckedContinuation<Bool, Never>)>()
        var consumer: CheckedContinuation<Void, Never>?
        var wake = false
    }

    let capacity: Int
    let state = Mutex(State())

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    var depth: Int { state.withLock { $0.messages } }

    /// Appends `delivery`, suspending while the queue is full. A closed queue still accepts
    /// (the runtime closes lanes only after their producers stopped).
    func push(_ delivery: Delivery) async {
        let consumer: CheckedContinuation<Void, Never>?? = state.withLock { state in
            guard state.messages == 0 || state.messages + delivery.count <= capacity, state.producers.isEmpty else { return .none }
            state.items.append(delivery)
            state.messages += delivery.count
            return .some(state.takeConsumer())
        }
        if let consumer {
            consumer?.resume()
            return
        }
        let appended = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let ready: (Bool, CheckedContinuation<Void, Never>?) = state.withLock { state in
                if state.producers.isEmpty && (state.messages == 0 || state.messages + delivery.count <= capacity) {
                    state.items.append(delivery)
                    state.messages += delivery.count
                    return (true, state.takeConsumer())
                }
                state.producers.append((delivery.count, continuation))
                return (false, nil)
            }
            if ready.0 {
                ready.1?.resume()
                continuation.resume(returning: true)
            }
        }
        // Room appeared before we queued: the delivery is already in.
        if appended { return }
        // Woken by the consumer with room reserved for us.
        let consumer2 = state.withLock { state in
            state.items.append(delivery)
            state.messages += delivery.count
            return state.takeConsumer()
        }
        consumer2?.resume()
    }

    /// No more batches will be pushed; `take` returns nil once the queue is empty.
    func close() {
        let consumer = state.withLock { state in
            state.closed = true
            state.flushing = true
            state.wake = true
            return state.takeConsumer()
        }
        consumer?.resume()
    }

    /// Hands over partial batches at once from now on (shutdown).
    func flush() {
        let consumer = state.withLock { state in
            state.flushing = true
            state.wake = true
            return state.takeConsumer()
        }
        consumer?.resume()
    }

    /// The next batch by `policy`, or nil when the queue is closed and empty.
    func take(_ policy: BatchingPolicy) async -> [Delivery]? {
        while true {
            let status = state.withLock { state -> (empty: Bool, closed: Bool) in (state.items.isEmpty, state.closed) }
            if !status.empty { break }
            if status.closed { return nil }
            await waitForItems()
        }
        var taken: [Delivery] = []
        var messages = 0
        var bytes = 0
        let deadline = ContinuousClock.now + policy.maxDelay
        while true {
            let (released, flushing) = state.withLock { state -> ([CheckedContinuation<Bool, Never>], Bool) in
                while var first = state.items.first, messages < policy.maxMessages, bytes < policy.maxBytes {
                    var room = policy.maxMessages - messages
                    if bytes + first.bytes > policy.maxBytes && first.count > 1 {
                        // Take only the messages it takes to reach maxBytes, so one large
                        // submitted batch is cut too.
                        var size = bytes
                        var needed = 0
                        for message in first.messages.prefix(room) {
                            needed += 1
                            size += message.accountedBytes
                            if size >= policy.maxBytes { break }
                        }
                        room = needed
                    }
                    if first.count > room {
                        let head = first.split(first: room)
                        state.items[state.items.startIndex] = first
                        first = head
                    } else {
                        state.items.removeFirst()
                    }
                    state.messages -= first.count
                    messages += first.count
                    bytes += first.bytes
                    taken.append(first)
                }
                return (state.admitProducers(capacity: capacity), state.flushing)
            }
            for producer in released { producer.resume(returning: false) }
            if messages >= policy.maxMessages || bytes >= policy.maxBytes || flushing { return taken }
            if ContinuousClock.now >= deadline { return taken }
            await waitForItems(until: deadline)
        }
    }

    private func waitForItems() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { state -> Bool in
                if !state.items.isEmpty || state.closed || state.wake {
                    state.wake = false
                    return true
                }
                state.consumer = continuation
                return false
            }
            if ready { continuation.resume() }
        }
    }

    private func waitForItems(until deadline: ContinuousClock.Instant) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                try? await Task.sleep(until: deadline, clock: .continuous)
                let consumer = self.state.withLock { state in
                    state.wake = true
                    return state.takeConsumer()
                }
                consumer?.resume()
            }
            group.addTask {
                await self.waitForMore()
            }
            await group.next()
            group.cancelAll()
        }
        state.withLock { $0.wake = false }
    }

    /// Waits until something new arrives (or a wake-up), regardless of items already taken.
    private func waitForMore() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { state -> Bool in
                if !state.items.isEmpty || state.closed || state.wake || state.flushing { return true }
                state.consumer = continuation
                return false
            }
            if ready { continuation.resume() }
        }
    }
}

extension DeliveryQueue.State {
    mutating func takeConsumer() -> CheckedContinuation<Void, Never>? {
        let consumer = self.consumer
        self.consumer = nil
        if consumer == nil { wake = wake || false }
        return consumer
    }

    /// Lets waiting producers in while there is room; their space is reserved here.
    mutating func admitProducers(capacity: Int) -> [CheckedContinuation<Bool, Never>] {
        var released: [CheckedContinuation<Bool, Never>] = []
        var projected = messages
        while let first = producers.first, projected == 0 || projected + first.count <= capacity {
            producers.removeFirst()
            projected += first.count
            released.append(first.continuation)
        }
        return released
    }
}
