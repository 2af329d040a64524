import SwitchyardConfig
import SwitchyardCore

extension Pipeline {
    /// The status of the running document (`/status` and the status page).
    public func statusReport() -> StatusReport {
        let (document, sources, targets, draining, generation) = state.withLock {
            ($0.document, $0.sources, $0.targets, $0.draining, $0.generation)
        }
        let scrub = Scrubber(texts: document.insertedTexts)
        let now = ContinuousClock.now
        let readiness = readiness()
        var keys = Set<ObjectIdentifier>()

        func lastError(_ tally: ConnectorTally) -> StatusReport.LastError? {
            tally.lastError.map { StatusReport.LastError(message: scrub($0.message), unixTime: $0.unixTime, ageSeconds: $0.age.seconds) }
        }

        var sourceReports: [StatusReport.Source] = []
        for entry in document.sources {
            guard let running = sources[entry.name] else { continue }
            let context = running.context
            let tally = context.tally
            keys.insert(ObjectIdentifier(tally))
            let count = tally.messages.load(ordering: .relaxed)
            let inflight = max(0, context.inflightMessages)
            let backlog = running.source.backlog
            var state: String
            var reason: String?
            switch running.source.health {
            case .up: state = "running"
            case .connecting: state = "connecting"
            case .down(let why): state = "down"; reason = why
            }
            if running.finished.load(ordering: .relaxed) {
                state = "finished"
            } else if context.isStopping {
                state = "stopping"
            }
            sourceReports.append(
                StatusReport.Source(
                    name: scrub(entry.name), kind: entry.kind, state: state, reason: reason.map(scrub.callAsFunction),
                    messages: count, bytes: tally.bytes.load(ordering: .relaxed),
                    acknowledged: tally.secondary.load(ordering: .relaxed), filtered: tally.tertiary.load(ordering: .relaxed),
                    ratePerSecond: rates.rate(ObjectIdentifier(tally), count: count, since: running.created, now: now),
                    inflight: inflight, backlog: backlog, lag: inflight + (backlog ?? 0),
                    oldestUnackedSeconds: context.ledger.oldestPendingAge.seconds,
                    notes: running.source.notes.map(scrub.callAsFunction), idle: running.source.idle, lastError: lastError(tally)))
        }

        var targetReports: [StatusReport.Target] = []
        for entry in document.targets {
            guard let running = targets[entry.name] else { continue }
            let runner = running.runner
            let tally = runner.tally
            keys.insert(ObjectIdentifier(tally))
            let count = tally.messages.load(ordering: .relaxed)
            var state = "running"
            var reason: String?
            if let stopped = runner.stoppedReason {
                state = "stopped"; reason = stopped
            } else if let paused = runner.pausedReason {
                state = "paused"; reason = paused
            } else if case .down(let why) = runner.target.health {
                state = "down"; reason = why
            } else if runner.target.health == .connecting || !runner.isOpen {
                state = "connecting"
            }
            targetReports.append(
                StatusReport.Target(
                    name: scrub(entry.name), kind: entry.kind, state: state, reason: reason.map(scrub.callAsFunction),
                    deadLetter: entry.name == document.delivery.deadLetter,
                    written: count, bytes: tally.bytes.load(ordering: .relaxed),
                    retried: tally.secondary.load(ordering: .relaxed), deadLettered: tally.tertiary.load(ordering: .relaxed),
                    ratePerSecond: rates.rate(ObjectIdentifier(tally), count: count, since: running.created, now: now),
                    queued: runner.queuedMessages, lastError: lastError(tally)))
        }
        rates.keep(keys)

        let routes = document.routes.map { route in
            StatusReport.Route(
                name: scrub(route.name), from: route.from.map(scrub.callAsFunction), to: route.to.map(scrub.callAsFunction),
                filtered: !route.filter.isEmpty)
        }
        let tapSettings = tap.settings
        let attached = tap.attached.map { point, counts in
            StatusReport.Tap.Attached(
                at: scrub(point.description), seen: counts.seen, sent: counts.sent, dropped: counts.dropped, buffered: counts.buffered)
        }
        return StatusReport(
            name: document.name.map(scrub.callAsFunction), generation: generation, ready: readiness.ready,
            reasons: readiness.reasons.filter { !$0.hasPrefix("note: ") }.map(scrub.callAsFunction),
            draining: draining, uptimeSeconds: (now - started).seconds,
            memory: .init(limitBytes: budget.limit, usedBytes: budget.used),
            inflight: .init(messages: router.stats.inflightMessages, bytes: router.stats.inflightBytes),
            sources: sourceReports, routes: routes, targets: targetReports,
            tap: .init(enabled: tapSettings.enabled, attached: attached.sorted { $0.at < $1.at }))
    }
}
