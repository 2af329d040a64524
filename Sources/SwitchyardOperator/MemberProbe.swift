import AsyncHTTPClient
import Foundation
import NIOCore

/// Counts a Connector's pods that hold no share of the work, from what each running pod's
/// `/status` says (`http://POD_IP:PORT/status`, PORT the container port named `http`): a pod is
/// idle when it has sources and every one of them is `idle` (a Kafka consumer whose group has
/// more members than the topics have partitions). Kubernetes itself cannot tell: an idle pod is
/// healthy and ready, it only has nothing to do.
public struct MemberProbe: Sendable {
    public struct Count: Sendable, Equatable {
        /// Pods in phase Running with an address, not being deleted.
        public var running = 0
        /// Of those, the ones whose `/status` answered in time.
        public var answered = 0
        public var idle = 0

        public init(running: Int = 0, answered: Int = 0, idle: Int = 0) {
            self.running = running
            self.answered = answered
            self.idle = idle
        }
    }

    let http: HTTPClient
    let timeout: Duration

    public init(http: HTTPClient = .shared, timeout: Duration = .seconds(2)) {
        self.http = http
        self.timeout = timeout
    }

    /// Asks every running pod of `pods` (a PodList) at once.
    public func count(pods: JSON) async -> Count {
        let targets = (pods["items"]?.array ?? []).compactMap(Self.statusURL)
        var count = Count(running: targets.count)
        await withTaskGroup(of: Bool?.self) { group in
            for url in targets {
                group.addTask { await self.isIdle(url) }
            }
            for await answer in group {
                guard let answer else { continue }
                count.answered += 1
                if answer { count.idle += 1 }
            }
        }
        return count
    }

    /// The `/status` address of a running pod; nil for a pod that is not running, has no
    /// address yet or is being deleted.
    public static func statusURL(_ pod: JSON) -> String? {
        guard pod[path: ["metadata", "deletionTimestamp"]] == nil, pod[path: ["status", "phase"]]?.string == "Running",
            let ip = pod[path: ["status", "podIP"]]?.string, !ip.isEmpty
        else { return nil }
        let ports = (pod[path: ["spec", "containers"]]?.array ?? []).flatMap { $0["ports"]?.array ?? [] }
        guard let port = ports.first(where: { $0["name"]?.string == "http" })?["containerPort"]?.int else { return nil }
        let host = ip.contains(":") ? "[\(ip)]" : ip
        return "http://\(host):\(port)/status"
    }

    /// Whether the pod at `url` is idle; nil when it did not answer with a status.
    func isIdle(_ url: String) async -> Bool? {
        do {
            let response = try await http.execute(
                HTTPClientRequest(url: url),
                timeout: .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000))
            let body = try await response.body.collect(upTo: 4 << 20)
            guard response.status == .ok, let status = try? JSON.parse(body.readableBytesView) else { return nil }
            let sources = status["sources"]?.array ?? []
            return !sources.isEmpty && sources.allSatisfy { $0["idle"]?.bool == true }
        } catch {
            return nil
        }
    }
}
