import Logging
import Metrics
import Synchronization

/// In-flight totals for the whole process.
public final class DeliveryStats: BatchCompletionObserver {
    let messages = Atomic<Int>(0)
    let bytes = Atomic<Int>(0)
    let budget: ByteBudget

    public init(budget: ByteBudget) {
        self.budget = budget
    }

    public var inflightMessages: Int { messages.load(ordering: .relaxed) }
    public var inflightBytes: Int { bytes.load(ordering: .relaxed) }

    func submitted(messages count: Int, bytes size: Int) {
        messages.add(count, ordering: .relaxed)
        bytes.add(size, ordering: .relaxed)
    }

    public func batchCompleted(messages count: Int, bytes size: Int) {
        messages.subtract(count, ordering: .relaxed)
        bytes.subtract(size, ordering: .relaxed)
        budget.release(size)
    }
}
