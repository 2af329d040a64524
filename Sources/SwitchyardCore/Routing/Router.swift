import Logging
import Metrics
import Synchronization

/// Routes submitted batches to target lanes: filters, fan-out, ledger registration and the
/// byte budget. The routing table can be replaced while batches flow (hot reload).
public final class Router: Sendable {
    /// For one source: its targets (bit `i` of a mask is `targets[i]`) and matching routes.
    struct SourcePlan: Sendable {
        var targets: [TargetRunner]
        var ordering: [Ordering]
        var routes: [(filter: RouteFilter, mask: UInt64, name: String)]
        /// The mask when no route filters (every message goes to the same targets).
        var constantMask: UInt64?
    }

    let plans = Mutex<[String: SourcePlan]>([:])
    public let budget: ByteBudget
    public let stats: DeliveryStats
    /// Live sampling (`switchyard tap`); idle unless a reader is attached.
    public let tap: TapHub
    let logger: Logger

    public init(budget: ByteBudget, logger: Logger, tap: TapHub = TapHub()) {
        self.tap = tap
        self.budget = budget
        self.stats = DeliveryStats(budget: budget)
        self.logger = logger
    }

    /// Installs the routing table: `routes` over the named target runners.
    public func install(routes: [Route], runners: [String: TargetRunner]) {
        var built: [String: SourcePlan] = [:]
        let sources = Set(routes.flatMap(\.from))
        for source in sources {
            var targets: [TargetRunner] = []
            var ordering: [Ordering] = []
            var entries: [(filter: RouteFilter, mask: UInt64, name: String)] = []
            for route in routes where route.from.contains(source) {
                var mask: UInt64 = 0
                for name in route.to {
                    guard let runner = runners[name] else { continue }
                    let index: Int
                    if let existing = targets.firstIndex(where: { $0 === runner }) {
                        index = existing
                    } else {
                        precondition(targets.count < 64, "a source routes to at most 64 targets")
                        targets.append(runner)
                        ordering.append(route.ordering)
                        index = targets.count - 1
                    }
                    mask |= 1 << UInt64(index)
                }
                entries.append((route.filter, mask, route.name))
            }
            var constant: UInt64?
            if entries.allSatisfy({ $0.filter.isEmpty }) {
                constant = entries.reduce(0) { $0 | $1.mask }
            }
            built[source] = SourcePlan(targets: targets, ordering: ordering, routes: entries, constantMask: constant)
        }
        plans.withLock { $0 = built }
    }

    /// Charges the batch to the byte budget (suspending while it is spent), registers it with
    /// the source's ledger and hands it to every target a route sends it to (suspending while
    /// a target queue is full).
    func submit(_ batch: Batch, source: String, ledger: SourceLedger, metrics: SourceMetrics, provenance: Provenance? = nil) async throws {
        var batch = batch
        let count = batch.messages.count
        guard count > 0 else { return }
        let plan = plans.withLock { $0[source] }
        var skipped: [Bool]?
        if let provenance {
            var origin = 0
            var hops = 0
            for index in batch.messages.indices {
                switch provenance.apply(&batch.messages[index]) {
                case nil: continue
                case .origin: origin += 1
                case .maxHops: hops += 1
                }
                if skipped == nil { skipped = Array(repeating: false, count: count) }
                skipped![index] = true
            }
            if origin + hops > 0 {
                metrics.provenance.record(origin: origin, maxHops: hops, source: source, limit: provenance.maxHops, logger: logger)
            }
        }
        var bytes = 0
        var offsets: [Int64] = []
        offsets.reserveCapacity(count)
        for message in batch.messages {
            bytes += message.accountedBytes
            offsets.append(message.offset)
        }
        try await budget.acquire(bytes)
        metrics.messages.increment(by: count)
        metrics.bytes.increment(by: bytes)
        metrics.tally.messages.add(count, ordering: .relaxed)
        metrics.tally.bytes.add(bytes, ordering: .relaxed)
        if tap.isActive { offerToTaps(batch.messages, source: source, plan: plan, skipped: skipped) }
        metrics.inflight.add(count, ordering: .relaxed)
        stats.submitted(messages: count, bytes: bytes)

        guard let plan, !plan.targets.isEmpty else {
            metrics.filtered.increment(by: count)
            metrics.tally.tertiary.add(count, ordering: .relaxed)
            _ = ledger.register(shard: batch.shard, offsets: offsets, remaining: Array(repeating: 0, count: count), bytes: bytes)
            return
        }
        if let mask = plan.constantMask, skipped == nil {
            let fanout = UInt16(mask.nonzeroBitCount)
            let handle = ledger.register(
                shard: batch.shard, offsets: offsets, remaining: Array(repeating: fanout, count: count), bytes: bytes)
            for (index, runner) in plan.targets.enumerated() where mask & (1 << UInt64(index)) != 0 {
                let delivery = Delivery(handle: handle, messages: batch.messages, indices: nil, bytes: bytes)
                await runner.enqueue(delivery, ordering: plan.ordering[index], source: source, shard: batch.shard)
            }
            return
        }
        var masks = [UInt64](repeating: 0, count: count)
        var remaining = [UInt16](repeating: 0, count: count)
        var filtered = 0
        for (i, message) in batch.messages.enumerated() {
            var mask: UInt64 = 0
            if skipped?[i] != true {
                for route in plan.routes where route.filter.matches(message) { mask |= route.mask }
            }
            masks[i] = mask
            remaining[i] = UInt16(mask.nonzeroBitCount)
            if mask == 0 { filtered += 1 }
        }
        let skippedCount = skipped?.reduce(0) { $0 + ($1 ? 1 : 0) } ?? 0
        if filtered > skippedCount {
            metrics.filtered.increment(by: filtered - skippedCount)
            metrics.tally.tertiary.add(filtered - skippedCount, ordering: .relaxed)
        }
        let handle = ledger.register(shard: batch.shard, offsets: offsets, remaining: remaining, bytes: bytes)
        for (index, runner) in plan.targets.enumerated() {
            let bit: UInt64 = 1 << UInt64(index)
            var indices: [Int32] = []
            var messages: [Message] = []
            var size = 0
            for i in 0..<count where masks[i] & bit != 0 {
                indices.append(Int32(i))
                messages.append(batch.messages[i])
                size += batch.messages[i].accountedBytes
            }
            guard !indices.isEmpty else { continue }
            let delivery = Delivery(handle: handle, messages: messages, indices: indices, bytes: size)
            await runner.enqueue(delivery, ordering: plan.ordering[index], source: source, shard: batch.shard)
        }
    }
}

extension Router {
    /// Hands a submitted batch to the taps at the source and at the routes it takes (only
    /// called while some tap is attached).
    func offerToTaps(_ messages: [Message], source: String, plan: SourcePlan?, skipped: [Bool]?) {
        tap.offer(TapPoint(.source, source), messages)
        guard let plan else { return }
        for route in plan.routes where tap.isTapped(TapPoint(.route, route.name)) {
            tap.offer(TapPoint(.route, route.name), messages) { index in
                skipped?[index] != true && route.filter.matches(messages[index])
            }
        }
    }
}
