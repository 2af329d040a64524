import Foundation

/// Where a Connector's `spec.cutover` stands, as its conditions show it.
struct CutoverState: Sendable, Equatable {
    /// `CutoverComplete`: true once the Job succeeded and its report says the copy is complete.
    var complete: (Bool, String, String)
    /// `CutoverFailed`: true when the Job failed (the report's failed step and reason).
    var failed: (Bool, String, String)
    /// Still to be looked at again (pods to go, the Job running).
    var inProgress: Bool
    /// The `status.cutover` summary.
    var summary: JSON

    static func == (a: CutoverState, b: CutoverState) -> Bool {
        a.complete == b.complete && a.failed == b.failed && a.inProgress == b.inProgress && a.summary == b.summary
    }

    static func progressing(_ reason: String, _ message: String, job: String) -> CutoverState {
        CutoverState(
            complete: (false, reason, message), failed: (false, reason, message), inProgress: true,
            summary: ["phase": .string(reason), "job": .string(job)])
    }
}

/// `spec.cutover`, level-triggered: the workload is removed (the caller deletes the
/// Deployment); once no connector pod is left the Job runs `switchyard cutover`; once it has
/// finished, the JSON report its pod printed is stored in the ConfigMap `<name>-cutover` and
/// the conditions say how it ended. A report for the current cutover (same hash) ends it:
/// nothing runs again until the cutover or the document changes.
extension ConnectorReconciler {
    func applyCutover(_ cutover: CutoverJob, rendered: RenderedConnector, namespace: String, name: String, uid: String) async throws
        -> CutoverState
    {
        if let report = try await client.getIfExists(.configMap, namespace: namespace, name: cutover.reportName) {
            guard Self.isControlled(report, by: uid) else { throw NotOwnedError(kind: "ConfigMap", name: cutover.reportName) }
            if report[path: ["metadata", "annotations", CutoverJob.hashAnnotation]]?.string == cutover.hash {
                let text = report[path: ["data", CutoverJob.reportKey]]?.string ?? ""
                let succeeded = report[path: ["metadata", "annotations", Self.resultAnnotation]]?.string == "succeeded"
                return Self.finished(
                    report: JSON.parseText(text), jobSucceeded: succeeded, job: cutover.jobName, reportName: cutover.reportName)
            }
        }
        let pods = try await client.list(.pod, namespace: namespace, labelSelector: rendered.selector)["items"]?.array ?? []
        let live = pods.filter { !["Succeeded", "Failed"].contains($0[path: ["status", "phase"]]?.string ?? "") }
        if !live.isEmpty {
            return .progressing(
                "WaitingForPods",
                "\(live.count) connector pod\(live.count == 1 ? "" : "s") still running; the cutover Job starts once they are gone",
                job: cutover.jobName)
        }
        guard let job = try await client.getIfExists(.job, namespace: namespace, name: cutover.jobName) else {
            _ = try await apply(.job, cutover.job, uid: uid)
            logger.info(
                "cutover Job created",
                metadata: [
                    "connector": "\(namespace)/\(name)", "job": "\(cutover.jobName)", "groups": "\(cutover.groups.joined(separator: ","))",
                ])
            return .progressing("JobStarted", "the cutover Job \(cutover.jobName) was created", job: cutover.jobName)
        }
        guard Self.isControlled(job, by: uid) else { throw NotOwnedError(kind: "Job", name: cutover.jobName) }
        if job[path: ["metadata", "annotations", CutoverJob.hashAnnotation]]?.string != cutover.hash {
            // A Job's pod template cannot change: a changed cutover replaces it.
            try await deleteOwned(.job, namespace: namespace, name: cutover.jobName, uid: uid)
            return .progressing("Restarting", "spec.cutover or the document changed; the cutover Job is replaced", job: cutover.jobName)
        }
        let conditions = job[path: ["status", "conditions"]]?.array ?? []
        func has(_ type: String) -> Bool { conditions.contains { $0["type"]?.string == type && $0["status"]?.string == "True" } }
        let backoffLimit = job[path: ["spec", "backoffLimit"]]?.int ?? 6
        let succeeded = has("Complete") || (job[path: ["status", "succeeded"]]?.int ?? 0) > 0
        let failed = has("Failed") || (job[path: ["status", "failed"]]?.int ?? 0) > backoffLimit
        guard succeeded || failed else {
            return .progressing("Running", "the cutover Job \(cutover.jobName) runs", job: cutover.jobName)
        }
        // The report: the JSON the newest pod of the Job printed last.
        let jobPods =
            (try await client.list(.pod, namespace: namespace, labelSelector: "job-name=\(cutover.jobName)")["items"]?.array ?? [])
            .sorted {
                ($0[path: ["metadata", "creationTimestamp"]]?.string ?? "") > ($1[path: ["metadata", "creationTimestamp"]]?.string ?? "")
            }
        var reportText: String?
        var problem = "no pod of the Job was found"
        for pod in jobPods {
            guard let podName = pod[path: ["metadata", "name"]]?.string else { continue }
            do {
                let log = try await client.podLog(namespace: namespace, name: podName)
                if let text = Self.lastReport(in: log) {
                    reportText = text
                    break
                }
                problem = "the log of pod \(podName) holds no report"
            } catch {
                problem = "the log of pod \(podName) could not be read: \(error)"
            }
        }
        let stored =
            reportText
            ?? JSON.object([
                "condition": "CutoverFailed", "failedStep": "job",
                "reason": .string("the cutover Job \(succeeded ? "succeeded" : "failed") and \(problem)"),
            ]).text
        var configMap: JSON = [
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": [
                "name": .string(cutover.reportName), "namespace": .string(namespace),
                "labels": cutover.job[path: ["metadata", "labels"]] ?? .object([:]),
                "ownerReferences": cutover.job[path: ["metadata", "ownerReferences"]] ?? .array([]),
                "annotations": [
                    CutoverJob.hashAnnotation: .string(cutover.hash), Self.resultAnnotation: .string(succeeded ? "succeeded" : "failed"),
                ],
            ],
            "data": [CutoverJob.reportKey: .string(stored)],
        ]
        configMap[path: ["metadata", "labels", OperatorLabels.component]] = "cutover-report"
        _ = try await apply(.configMap, configMap, uid: uid)
        logger.info(
            "cutover finished", metadata: ["connector": "\(namespace)/\(name)", "job": "\(cutover.jobName)", "succeeded": "\(succeeded)"])
        return Self.finished(report: JSON.parseText(stored), jobSucceeded: succeeded, job: cutover.jobName, reportName: cutover.reportName)
    }

    /// On the report ConfigMap: whether the Job succeeded.
    static let resultAnnotation = "switchyard.dev/cutover-result"

    /// The last JSON object `switchyard cutover --output json` printed in a log: from a line
    /// that is only `{` to the next line that is only `}` (standard error's lines are never
    /// either).
    static func lastReport(in log: String) -> String? {
        let lines = log.split(separator: "\n", omittingEmptySubsequences: false)
        guard let end = lines.lastIndex(where: { $0 == "}" }), let start = lines[..<end].lastIndex(where: { $0 == "{" }) else { return nil }
        let text = lines[start...end].joined(separator: "\n")
        guard let json = JSON.parseText(text), json["condition"]?.string != nil else { return nil }
        return text
    }

    static func finished(report: JSON?, jobSucceeded: Bool, job: String, reportName: String) -> CutoverState {
        let copied = report?["copiedRecords"]?.int ?? 0
        let groups = (report?["groups"]?.array ?? []).compactMap(\.string)
        let equal = report?[path: ["reconciliation", "equal"]]?.bool == true
        let complete = jobSucceeded && report?["condition"]?.string == "CutoverComplete"
        var summary: JSON = [
            "phase": complete ? "Complete" : "Failed", "job": .string(job), "report": .string(reportName), "copiedRecords": .int(copied),
            "groups": .array(groups.map { .string($0) }),
        ]
        if let reconciliation = report?["reconciliation"], reconciliation != .null { summary["equal"] = .bool(equal) }
        if complete, let queue = report?["queue"]?.string {
            summary["queue"] = .string(queue)
            let message =
                "queue '\(queue)' drained (\(copied) messages at the start, 0 left); a consumed queue keeps nothing to reconcile; report in ConfigMap \(reportName)"
            return CutoverState(
                complete: (true, "CutoverComplete", message), failed: (false, "CutoverComplete", message), inProgress: false,
                summary: summary)
        }
        if complete {
            let message =
                "\(copied) records copied, \(groups.count) group\(groups.count == 1 ? "" : "s") moved (\(groups.joined(separator: ", "))), target equal to source; report in ConfigMap \(reportName)"
            return CutoverState(
                complete: (true, "CutoverComplete", message), failed: (false, "CutoverComplete", message), inProgress: false,
                summary: summary)
        }
        let step = report?["failedStep"]?.string ?? "job"
        let reason = report?["reason"]?.string ?? (report == nil ? "no report" : "the reconciliation found differences")
        summary["failedStep"] = .string(step)
        let message = "failed at \(step): \(reason); report in ConfigMap \(reportName)"
        return CutoverState(
            complete: (false, "CutoverFailed", message), failed: (true, "CutoverFailed", message), inProgress: false, summary: summary)
    }
}
