#if canImport(Glibc)
    import Glibc
#endif
import Foundation
import Logging
import Synchronization

/// Leader election on a `coordination.k8s.io/v1` Lease, as client-go does it: the holder renews
/// `spec.renewTime` every `retryPeriod`; another replica takes the Lease over once it has seen no
/// change to it for `leaseDuration` (measured on its own clock, so clock skew between nodes does
/// not matter). Every write is a conditional update on the Lease's resourceVersion, so two
/// replicas that race get one success and one 409. A leader that cannot renew for
/// `renewDeadline` (shorter than `leaseDuration`) stops acting before anyone else may start.
public struct LeaseSettings: Sendable {
    public var name: String
    public var namespace: String
    public var identity: String
    public var leaseDuration: Duration = .seconds(15)
    public var renewDeadline: Duration = .seconds(10)
    public var retryPeriod: Duration = .seconds(2)

    public init(name: String, namespace: String, identity: String) {
        self.name = name
        self.namespace = namespace
        self.identity = identity
    }
}

public final class LeaderElector: Sendable {
    let client: KubeClient
    let settings: LeaseSettings
    let logger: Logger
    let metrics = OperatorMetrics()
    /// The Lease as last seen (holder, renewTime, resourceVersion) and when it was first seen so.
    let observed = Mutex<(record: [String], at: ContinuousClock.Instant)?>(nil)
    let leading = Atomic<Bool>(false)
    let reachable = Atomic<Bool>(false)

    public init(client: KubeClient, settings: LeaseSettings, logger: Logger) {
        self.client = client
        self.settings = settings
        self.logger = logger
    }

    /// Whether this replica holds the Lease now.
    public var isLeader: Bool { leading.load(ordering: .acquiring) }

    /// Whether the last Lease request got an answer from the API server.
    public var apiReachable: Bool { reachable.load(ordering: .relaxed) }

    /// Until cancelled: acquire the Lease, run `whileLeading` while it is held (cancelled when it
    /// is lost), and try again. On cancellation a held Lease is released, so another replica
    /// takes over at once instead of after `leaseDuration`.
    public func run(whileLeading: @escaping @Sendable () async -> Void) async {
        while !Task.isCancelled {
            while !Task.isCancelled {
                if await tryAcquireOrRenew() { break }
                try? await Task.sleep(for: jittered(settings.retryPeriod))
            }
            if Task.isCancelled { break }
            logger.notice(
                "leader election: acquired the Lease",
                metadata: ["lease": "\(settings.namespace)/\(settings.name)", "identity": "\(settings.identity)"])
            setLeading(true)
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await whileLeading() }
                group.addTask { await self.renewUntilLost() }
                // The first to finish (the Lease lost, or cancellation) ends the other.
                _ = await group.next()
                group.cancelAll()
            }
            setLeading(false)
            if !Task.isCancelled {
                logger.warning(
                    "leader election: lost the Lease; stopped reconciling", metadata: ["lease": "\(settings.namespace)/\(settings.name)"])
            }
        }
        // Cancelled: the release's requests must not be cancelled with it.
        await Task { await self.release() }.value
    }

    func setLeading(_ value: Bool) {
        leading.store(value, ordering: .releasing)
        metrics.leader.record(value ? 1 : 0)
    }

    /// Renews every `retryPeriod`; returns when no renewal succeeded for `renewDeadline`.
    func renewUntilLost() async {
        var lastRenewal = ContinuousClock.now
        while !Task.isCancelled {
            try? await Task.sleep(for: settings.retryPeriod)
            if Task.isCancelled { return }
            if await tryAcquireOrRenew() {
                lastRenewal = .now
            } else if ContinuousClock.now - lastRenewal >= settings.renewDeadline {
                return
            }
        }
    }

    func jittered(_ period: Duration) -> Duration {
        period + period * Double.random(in: 0..<0.2)
    }

    /// One attempt: create the Lease, renew it, or take it over when it expired. True when this
    /// replica holds it afterwards.
    func tryAcquireOrRenew() async -> Bool {
        let now = Self.microTime(Date())
        do {
            let current = try await client.getIfExists(.lease, namespace: settings.namespace, name: settings.name)
            reachable.store(true, ordering: .relaxed)
            guard let lease = current else {
                let created: JSON = [
                    "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": ["name": .string(settings.name), "namespace": .string(settings.namespace)],
                    "spec": [
                        "holderIdentity": .string(settings.identity), "leaseDurationSeconds": .int(durationSeconds),
                        "acquireTime": .string(now), "renewTime": .string(now), "leaseTransitions": 0,
                    ],
                ]
                let stored = try await client.create(.lease, namespace: settings.namespace, created)
                observe(stored)
                return true
            }
            observe(lease)
            let holder = lease[path: ["spec", "holderIdentity"]]?.string ?? ""
            if !holder.isEmpty && holder != settings.identity && !observedExpired(lease) {
                return false
            }
            var spec = lease["spec"] ?? .object([:])
            if holder != settings.identity {
                spec["acquireTime"] = .string(now)
                spec["leaseTransitions"] = .int((spec["leaseTransitions"]?.int ?? 0) + 1)
            }
            spec["holderIdentity"] = .string(settings.identity)
            spec["leaseDurationSeconds"] = .int(durationSeconds)
            spec["renewTime"] = .string(now)
            var updated = lease
            updated["spec"] = spec
            let stored = try await client.replace(.lease, namespace: settings.namespace, name: settings.name, updated)
            observe(stored)
            return true
        } catch let error as KubeError where error.isConflict {
            // Another replica wrote the Lease first.
            return false
        } catch {
            reachable.store((error as? KubeError)?.code != 0, ordering: .relaxed)
            logger.warning("leader election: cannot read or write the Lease", metadata: ["error": "\(error)"])
            return false
        }
    }

    var durationSeconds: Int { max(1, Int(settings.leaseDuration.components.seconds)) }

    func observe(_ lease: JSON) {
        let record = [
            lease[path: ["spec", "holderIdentity"]]?.string ?? "", lease[path: ["spec", "renewTime"]]?.string ?? "",
            lease[path: ["metadata", "resourceVersion"]]?.string ?? "",
        ]
        observed.withLock { state in
            if state?.record != record { state = (record, .now) }
        }
    }

    /// The Lease has not changed for its duration, on this replica's clock.
    func observedExpired(_ lease: JSON) -> Bool {
        let seconds = lease[path: ["spec", "leaseDurationSeconds"]]?.int ?? durationSeconds
        guard let at = observed.withLock({ $0?.at }) else { return false }
        return ContinuousClock.now - at > .seconds(seconds)
    }

    /// Gives the Lease up if this replica holds it: clears the holder.
    func release() async {
        guard let lease = try? await client.getIfExists(.lease, namespace: settings.namespace, name: settings.name),
            lease[path: ["spec", "holderIdentity"]]?.string == settings.identity
        else { return }
        var updated = lease
        updated[path: ["spec", "holderIdentity"]] = nil
        updated[path: ["spec", "leaseDurationSeconds"]] = 1
        updated[path: ["spec", "renewTime"]] = .string(Self.microTime(Date()))
        do {
            _ = try await client.replace(.lease, namespace: settings.namespace, name: settings.name, updated)
            logger.notice("leader election: released the Lease", metadata: ["lease": "\(settings.namespace)/\(settings.name)"])
        } catch {
            logger.warning("leader election: cannot release the Lease", metadata: ["error": "\(error)"])
        }
    }

    /// `metav1.MicroTime`: RFC 3339 in UTC with exactly six fractional digits.
    static func microTime(_ date: Date) -> String {
        let interval = date.timeIntervalSince1970
        var seconds = time_t(interval.rounded(.down))
        let micros = Int((interval - Double(seconds)) * 1_000_000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let fraction = String(micros)
        return
            "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))."
            + String(repeating: "0", count: max(0, 6 - fraction.count)) + fraction + "Z"
    }
}
