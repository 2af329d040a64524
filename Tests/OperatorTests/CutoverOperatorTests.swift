import Foundation
import SwitchyardOperator
import Testing

/// `spec.cutover` carried out by the operator against the fake API server. The test plays the
/// kubelet: it runs the Job's command (the real `switchyard cutover`, against two kafka-mock
/// processes) with the document the operator mounted, then gives the fake the pod, its log and
/// the Job's status, as a cluster would.
@Suite("Cutover through the operator", .serialized)
struct CutoverOperatorTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The test bed's `.state/services.env`.
    static func testBed() throws -> [String: String] {
        let text = try String(contentsOf: repository.appendingPathComponent(".state/services.env"), encoding: .utf8)
        var values: [String: String] = [:]
        for line in text.split(separator: "\n") where line.contains("=") && !line.hasPrefix("#") {
            let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
            values[parts[0]] = parts.count > 1 ? parts[1] : ""
        }
        return values
    }

    /// Runs a program to its end; its exit status and its standard output and error together
    /// (as a pod's log holds them). Waits by polling with sleeps: no thread of the cooperative
    /// pool (which the in-process operator needs) is held, and none spins.
    static func run(_ arguments: [String], input: String? = nil) async throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: arguments[0].hasPrefix("/") ? arguments[0] : "/usr/bin/env")
        process.arguments = arguments[0].hasPrefix("/") ? Array(arguments.dropFirst()) : arguments
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("cutover-operator-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: output) }
        let handle = try FileHandle(forWritingTo: output)
        process.standardOutput = handle
        process.standardError = handle
        let stdin = Pipe()
        process.standardInput = stdin
        try process.run()
        if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
        try stdin.fileHandleForWriting.close()
        let deadline = ContinuousClock.now + .seconds(150)
        while process.isRunning && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        if process.isRunning {
            process.terminate()
            Issue.record("\(arguments.joined(separator: " ")) did not finish within 150 s")
        }
        while process.isRunning { try await Task.sleep(for: .milliseconds(20)) }
        try handle.close()
        return (process.terminationStatus, (try? String(contentsOf: output, encoding: .utf8)) ?? "")
    }

    /// A kafka-mock process with `topics`, stopped when the value goes.
    final class MockCluster: @unchecked Sendable {
        let process = Process()
        let brokers: String

        init(_ topics: [String: Int]) throws {
            let binary = try #require(
                try CutoverOperatorTests.testBed()["SWITCHYARD_KAFKA_MOCK_BIN"],
                "the test bed has no kafka-mock: run scripts/services start")
            let portFile = FileManager.default.temporaryDirectory.appendingPathComponent("cutover-operator-\(UUID().uuidString).bootstraps")
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = ["--brokers", "1", "--port-file", portFile.path] + topics.flatMap { ["--topic", "\($0.key):\($0.value)"] }
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            var list = ""
            for _ in 0..<200 where list.isEmpty {
                Thread.sleep(forTimeInterval: 0.05)
                list = ((try? String(contentsOf: portFile, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            }
            try? FileManager.default.removeItem(at: portFile)
            brokers = list
            if list.isEmpty { process.terminate() }
            try #require(!list.isEmpty, "kafka-mock wrote no bootstrap list")
        }

        deinit { if process.isRunning { process.terminate() } }
    }

    static let kcatGroup = ["-X", "auto.offset.reset=earliest", "-X", "session.timeout.ms=3000", "-X", "heartbeat.interval.ms=500"]

    static func bridge(_ name: String, east: String, west: String, groups: [String]) -> JSON {
        [
            "apiVersion": "switchyard.dev/v1alpha1", "kind": "Connector",
            "metadata": ["name": .string(name), "namespace": "shop"],
            "spec": [
                "sources": [
                    [
                        "name": "east", "cluster": "east",
                        "kafka": [
                            "brokers": [.string(east)], "topics": ["orders"], "group": .string("bridge-\(name)"),
                            "options": ["session.timeout.ms": "3000", "heartbeat.interval.ms": "500"],
                        ],
                    ]
                ],
                "targets": [
                    ["name": "west", "kafka": ["brokers": [.string(west)], "topic": "mirror.{{ channel }}", "partition": "keep"]]
                ],
                "routes": [["from": ["east"], "to": ["west"]]],
                "observability": ["listen": .string("127.0.0.1:\(Int.random(in: 20_000...29_999))")],
                "cutover": ["groups": .array(groups.map { .string($0) })],
            ],
        ]
    }

    @Test(.timeLimit(.minutes(4)))
    func theOperatorRunsTheCutoverJobAndRecordsItsReport() async throws {
        let east = try MockCluster(["orders": 2])
        let west = try MockCluster(["mirror.orders": 2])
        let records = (0..<300).map { "k\($0)|v\($0)" }.joined(separator: "\n") + "\n"
        #expect(try await Self.run(["kcat", "-P", "-b", east.brokers, "-t", "orders", "-K", "|"], input: records).status == 0)
        // The application's group reads 100 records on the source and leaves.
        let group = "billing-\(UInt32.random(in: 0...UInt32.max))"
        let consumed = try await Self.run(
            ["kcat", "-b", east.brokers, "-G", group] + Self.kcatGroup + ["-c", "100", "-q", "-f", "%p:%o\n", "orders"])
        #expect(consumed.status == 0, "\(consumed.output)")
        let consumedPositions = Set(consumed.output.split(separator: "\n").map(String.init))
        #expect(consumedPositions.count == 100)

        try await withHarness { harness in
            let fake = harness.fake
            _ = try harness.startOperator(identity: "a")
            _ = fake.create(.connector, "shop", Self.bridge("orders", east: east.brokers, west: west.brokers, groups: [group]))

            // The workload is not run; the Job is.
            try await eventually("the cutover Job") { fake.object(.job, "shop", "orders-cutover") != nil }
            #expect(fake.object(.deployment, "shop", "orders") == nil)
            let job = try #require(fake.object(.job, "shop", "orders-cutover"))
            #expect(job[path: ["metadata", "ownerReferences"]]?.array?.first?["kind"]?.string == "Connector")
            #expect(job[path: ["spec", "template", "spec", "restartPolicy"]]?.string == "Never")
            #expect(job[path: ["spec", "template", "metadata", "labels", "app.kubernetes.io/component"]]?.string == "cutover")
            let arguments = (job[path: ["spec", "template", "spec", "containers"]]?.array?.first?["args"]?.array ?? []).compactMap(\.string)
            #expect(arguments == ["cutover", "-c", "/etc/switchyard/connector.yaml", "--output", "json", "--group", group], "\(arguments)")
            try await eventually("the status says the Job runs") {
                fake.object(.connector, "shop", "orders")?.condition("CutoverComplete")?["reason"]?.string == "JobStarted"
            }

            // The kubelet's part: the Job's command on the mounted document.
            let document = try #require(fake.object(.configMap, "shop", "orders")?[path: ["data", "connector.yaml"]]?.string)
            #expect(!document.contains("cutover"), "the pods' document leaves spec.cutover to the operator")
            let mounted = FileManager.default.temporaryDirectory.appendingPathComponent("cutover-operator-\(UUID().uuidString).yaml")
            try document.write(to: mounted, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(at: mounted) }
            let binary = Self.repository.appendingPathComponent(".build/debug/switchyard").path
            let pod = try await Self.run([binary] + arguments.map { $0 == "/etc/switchyard/connector.yaml" ? mounted.path : $0 })
            #expect(pod.status == 0, "\(pod.output)")
            _ = fake.create(
                .pod, "shop",
                [
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": ["name": "orders-cutover-x7k2p", "namespace": "shop", "labels": ["job-name": "orders-cutover"]],
                    "spec": ["containers": [["name": "cutover"]]],
                ])
            fake.setStatus(.pod, "shop", "orders-cutover-x7k2p", ["phase": "Succeeded"])
            fake.setPodLog("shop", "orders-cutover-x7k2p", pod.output)
            fake.setStatus(.job, "shop", "orders-cutover", ["succeeded": 1, "conditions": [["type": "Complete", "status": "True"]]])

            try await eventually("CutoverComplete") {
                fake.object(.connector, "shop", "orders")?.condition("CutoverComplete")?["status"]?.string == "True"
            }
            let connector = try #require(fake.object(.connector, "shop", "orders"))
            let message = connector.condition("CutoverComplete")?["message"]?.string ?? ""
            #expect(message.contains("300 records copied, 1 group moved (\(group)), target equal to source"), "\(message)")
            #expect(connector.condition("CutoverFailed")?["status"]?.string == "False")
            #expect(connector.condition("Ready")?["reason"]?.string == "Cutover")
            #expect(connector[path: ["status", "cutover", "phase"]]?.string == "Complete")
            #expect(connector[path: ["status", "cutover", "copiedRecords"]]?.int == 300)
            let report = try #require(fake.object(.configMap, "shop", "orders-cutover"))
            #expect(report[path: ["metadata", "ownerReferences"]]?.array?.first?["name"]?.string == "orders")
            let reportText = try #require(report[path: ["data", "report.json"]]?.string)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(reportText.utf8)) as? [String: Any])
            #expect(object["condition"] as? String == "CutoverComplete")
            #expect((object["reconciliation"] as? [String: Any])?["equal"] as? Bool == true)
            #expect(fake.object(.deployment, "shop", "orders") == nil, "the Connector stays stopped")

            // Nothing is lost and nothing read twice: the group continues on the target from
            // exactly the next record of each source partition.
            let continued = try await Self.run(
                ["kcat", "-b", west.brokers, "-G", group] + Self.kcatGroup + ["-c", "200", "-q", "-f", "%p:%o %h\n", "mirror.orders"])
            #expect(continued.status == 0, "\(continued.output)")
            var positions = Set<String>()
            for line in continued.output.split(separator: "\n") {
                let headers = line.split(separator: " ", maxSplits: 1).last.map(String.init) ?? ""
                let fields = Dictionary(
                    headers.split(separator: ",").compactMap { pair -> (String, String)? in
                        let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
                        return parts.count == 2 ? (parts[0], parts[1]) : nil
                    }, uniquingKeysWith: { $1 })
                if let partition = fields["switchyard-source-partition"], let offset = fields["switchyard-source-offset"] {
                    positions.insert("\(partition):\(offset)")
                }
            }
            #expect(positions.count == 200, "\(continued.output.prefix(500))")
            #expect(positions.isDisjoint(with: consumedPositions), "records the group had read on the source came again")
        }
    }

    @Test("the Job waits for the connector's pods to go; a Job that failed without a report ends in CutoverFailed")
    func waitsForPodsAndReportsAFailedJob() async throws {
        try await withHarness { harness in
            let fake = harness.fake
            _ = try harness.startOperator(identity: "a")
            // A connector pod still terminating.
            _ = fake.create(
                .pod, "shop",
                [
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": [
                        "name": "payments-5d9c-abcde", "namespace": "shop",
                        "labels": [
                            "app.kubernetes.io/name": "switchyard", "app.kubernetes.io/instance": "payments",
                            "app.kubernetes.io/component": "connector",
                        ],
                    ],
                    "spec": ["containers": [["name": "connector"]]],
                ])
            fake.setStatus(.pod, "shop", "payments-5d9c-abcde", ["phase": "Running"])
            _ = fake.create(.connector, "shop", Self.bridge("payments", east: "127.0.0.1:1", west: "127.0.0.1:2", groups: ["ledger"]))
            try await eventually("WaitingForPods") {
                fake.object(.connector, "shop", "payments")?.condition("CutoverComplete")?["reason"]?.string == "WaitingForPods"
            }
            #expect(fake.object(.job, "shop", "payments-cutover") == nil)
            fake.delete(.pod, "shop", "payments-5d9c-abcde")
            try await eventually("the cutover Job once the pod is gone", timeout: .seconds(60)) {
                fake.object(.job, "shop", "payments-cutover") != nil
            }

            fake.setStatus(.job, "shop", "payments-cutover", ["failed": 2, "conditions": [["type": "Failed", "status": "True"]]])
            try await eventually("CutoverFailed") {
                fake.object(.connector, "shop", "payments")?.condition("CutoverFailed")?["status"]?.string == "True"
            }
            let connector = try #require(fake.object(.connector, "shop", "payments"))
            let message = connector.condition("CutoverFailed")?["message"]?.string ?? ""
            #expect(message.contains("failed at job: the cutover Job failed and no pod of the Job was found"), "\(message)")
            #expect(connector.condition("CutoverComplete")?["status"]?.string == "False")
            #expect(connector[path: ["status", "cutover", "phase"]]?.string == "Failed")
            let report = try #require(fake.object(.configMap, "shop", "payments-cutover")?[path: ["data", "report.json"]]?.string)
            #expect(report.contains("CutoverFailed"))
        }
    }

    @Test("spec.cutover on a connector that is not a Kafka-to-Kafka bridge is refused with its path")
    func aCutoverWithoutABridgeIsRefused() async throws {
        try await withHarness { harness in
            let fake = harness.fake
            _ = try harness.startOperator(identity: "a")
            var resource = connector("files")
            resource[path: ["spec", "cutover"]] = ["groups": ["billing"]]
            _ = fake.create(.connector, "shop", resource)
            try await eventually("Valid=False") {
                fake.object(.connector, "shop", "files")?.condition("Valid")?["status"]?.string == "False"
            }
            let message = fake.object(.connector, "shop", "files")?.condition("Valid")?["message"]?.string ?? ""
            #expect(message.contains("spec.cutover.groups: a cutover needs a kafka source routed to a kafka target"), "\(message)")
            #expect(fake.object(.job, "shop", "files-cutover") == nil)
        }
    }

    @Test("a RabbitMQ source's cutover: the Job drains the queue with no group, and the condition says the queue was drained")
    func aQueueCutoverThroughTheOperator() async throws {
        try await withHarness { harness in
            let fake = harness.fake
            _ = try harness.startOperator(identity: "a")
            func resource(_ name: String, cutover: JSON) -> JSON {
                [
                    "apiVersion": "switchyard.dev/v1alpha1", "kind": "Connector",
                    "metadata": ["name": .string(name), "namespace": "shop"],
                    "spec": [
                        "sources": [["name": "legacy", "rabbitmq": ["url": "amqp://guest:guest@rabbitmq:5672/%2f", "queue": "orders"]]],
                        "targets": [["name": "out", "file": ["path": "/tmp/out.ndjson"]]],
                        "routes": [["from": ["legacy"], "to": ["out"]]],
                        "observability": ["listen": "0.0.0.0:8080"],
                        "cutover": cutover,
                    ],
                ]
            }
            _ = fake.create(.connector, "shop", resource("grouped", cutover: ["groups": ["billing"]]))
            try await eventually("Valid=False") {
                fake.object(.connector, "shop", "grouped")?.condition("Valid")?["status"]?.string == "False"
            }
            #expect(
                fake.object(.connector, "shop", "grouped")?.condition("Valid")?["message"]?.string?.contains(
                    "spec.cutover.groups: source 'legacy' is a RabbitMQ queue, which has no consumer groups to move") == true)

            _ = fake.create(.connector, "shop", resource("queue", cutover: [:]))
            try await eventually("the cutover Job") { fake.object(.job, "shop", "queue-cutover") != nil }
            let job = try #require(fake.object(.job, "shop", "queue-cutover"))
            let arguments = (job[path: ["spec", "template", "spec", "containers"]]?.array?.first?["args"]?.array ?? []).compactMap(\.string)
            #expect(arguments == ["cutover", "-c", "/etc/switchyard/connector.yaml", "--output", "json"], "\(arguments)")
            // What `switchyard cutover --output json` prints for a drained queue, after a log line.
            let log = """
                {"level":"notice","message":"the queue stayed empty","source":"legacy"}
                {
                  "condition": "CutoverComplete",
                  "copiedRecords": 1200,
                  "failedStep": null,
                  "groups": [],
                  "queue": "orders",
                  "queuedAfter": 0,
                  "queuedAtStart": 1200,
                  "reason": null,
                  "reconciliation": null,
                  "source": "legacy",
                  "target": "out"
                }
                """
            _ = fake.create(
                .pod, "shop",
                [
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": ["name": "queue-cutover-abcde", "namespace": "shop", "labels": ["job-name": "queue-cutover"]],
                ])
            fake.setPodLog("shop", "queue-cutover-abcde", log)
            fake.setStatus(.job, "shop", "queue-cutover", ["succeeded": 1, "conditions": [["type": "Complete", "status": "True"]]])
            try await eventually("CutoverComplete") {
                fake.object(.connector, "shop", "queue")?.condition("CutoverComplete")?["status"]?.string == "True"
            }
            let message = fake.object(.connector, "shop", "queue")?.condition("CutoverComplete")?["message"]?.string ?? ""
            #expect(
                message.contains(
                    "queue 'orders' drained (1200 messages at the start, 0 left); a consumed queue keeps nothing to reconcile"),
                "\(message)")
            #expect(fake.object(.connector, "shop", "queue")?[path: ["status", "cutover", "queue"]]?.string == "orders")
            #expect(
                fake.object(.configMap, "shop", "queue-cutover")?[path: ["data", "report.json"]]?.string?.contains(
                    "\"queuedAtStart\": 1200") == true)
        }
    }
}
