import Foundation
import Logging
import Synchronization

/// One Kubernetes Event about a Connector, as `kubectl describe connector` shows it.
public struct ConnectorEvent: Sendable, Equatable {
    public enum Kind: String, Sendable {
        case normal = "Normal"
        case warning = "Warning"
    }

    public var kind: Kind
    public var reason: String
    public var message: String

    public init(_ kind: Kind, _ reason: String, _ message: String) {
        self.kind = kind
        self.reason = reason
        self.message = message
    }

    /// What changed between two statuses that a user should see: a document refused (with its
    /// first problem), a rollout completed, the Connector paused or stopped. Only transitions:
    /// the same status twice says nothing.
    static func transitions(previous: JSON, current: JSON) -> [ConnectorEvent] {
        func condition(_ status: JSON, _ type: String) -> (status: String, reason: String, message: String)? {
            guard let found = (status["conditions"]?.array ?? []).first(where: { $0["type"]?.string == type }) else { return nil }
            return (found["status"]?.string ?? "", found["reason"]?.string ?? "", found["message"]?.string ?? "")
        }
        var events: [ConnectorEvent] = []
        if let valid = condition(current, "Valid"), valid.status == "False" {
            let before = condition(previous, "Valid")
            if before?.status != "False" || before?.message != valid.message {
                let first = valid.message.split(separator: "\n").first.map(String.init) ?? valid.message
                events.append(ConnectorEvent(.warning, "InvalidSpec", "the document was refused; the workload is left as it is: \(first)"))
            }
        }
        let readyBefore = condition(previous, "Ready")?.reason
        if let ready = condition(current, "Ready"), ready.reason != readyBefore {
            switch ready.reason {
            case "Paused":
                events.append(ConnectorEvent(.normal, "Paused", "spec.state is paused: scaled to zero; sources stopped after draining"))
            case "Stopped": events.append(ConnectorEvent(.normal, "Stopped", "spec.state is stopped: the Deployment is removed"))
            default: break
            }
        }
        if let progressing = condition(current, "Progressing"), progressing.reason == "RolledOut",
            condition(previous, "Progressing")?.reason != "RolledOut" || previous["runningGeneration"] != current["runningGeneration"]
        {
            let generation = current["runningGeneration"]?.int.map { " (generation \($0))" } ?? ""
            events.append(ConnectorEvent(.normal, "RolledOut", "every pod runs the current document\(generation)"))
        }
        return events
    }
}

/// Writes Events (core/v1) about Connectors. A failure to write one is logged, never fails a
/// reconcile: Events are for people, the status is the record.
final class EventRecorder: Sendable {
    static let event = ResourceType(group: "", version: "v1", plural: "events", kind: "Event")

    let client: KubeClient
    let logger: Logger
    let instance: String
    /// The last conflict reported per Connector, so that retries with backoff do not repeat it.
    let lastConflict = Mutex<[String: String]>([:])

    init(client: KubeClient, logger: Logger, instance: String) {
        self.client = client
        self.logger = logger
        self.instance = instance
    }

    func record(_ event: ConnectorEvent, about connector: JSON) async {
        let namespace = connector[path: ["metadata", "namespace"]]?.string ?? "default"
        let name = connector[path: ["metadata", "name"]]?.string ?? ""
        let now = ConnectorReconciler.rfc3339(Date())
        let suffix = String(UInt64(Date().timeIntervalSince1970 * 1_000_000_000), radix: 16)
        let object: JSON = [
            "apiVersion": "v1", "kind": "Event",
            "metadata": ["name": .string("\(name).\(suffix)"), "namespace": .string(namespace)],
            "involvedObject": [
                "apiVersion": .string(ResourceType.connector.apiVersion), "kind": "Connector", "name": .string(name),
                "namespace": .string(namespace),
                "uid": connector[path: ["metadata", "uid"]] ?? "",
                "resourceVersion": connector[path: ["metadata", "resourceVersion"]] ?? "",
            ],
            "reason": .string(event.reason), "message": .string(String(event.message.prefix(1024))), "type": .string(event.kind.rawValue),
            "source": ["component": "switchyard-operator"],
            "reportingComponent": "switchyard.dev/operator", "reportingInstance": .string(instance),
            "firstTimestamp": .string(now), "lastTimestamp": .string(now), "count": 1,
        ]
        do {
            _ = try await client.create(Self.event, namespace: namespace, object)
        } catch {
            logger.notice(
                "could not record an event",
                metadata: ["connector": "\(namespace)/\(name)", "reason": "\(event.reason)", "error": "\(error)"])
        }
    }

    /// A conflict over an owned object's name, reported once per distinct message.
    func conflict(_ error: NotOwnedError, about connector: JSON) async {
        let key = "\(connector[path: ["metadata", "namespace"]]?.string ?? "")/\(connector[path: ["metadata", "name"]]?.string ?? "")"
        let new = lastConflict.withLock { state -> Bool in
            defer { state[key] = error.description }
            return state[key] != error.description
        }
        if new { await record(ConnectorEvent(.warning, "ObjectConflict", error.description), about: connector) }
    }

    func conflictResolved(about connector: JSON) {
        let key = "\(connector[path: ["metadata", "namespace"]]?.string ?? "")/\(connector[path: ["metadata", "name"]]?.string ?? "")"
        _ = lastConflict.withLock { $0.removeValue(forKey: key) }
    }
}
