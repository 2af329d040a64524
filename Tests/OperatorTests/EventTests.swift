import Foundation
import SwitchyardOperator
import Testing

/// Events about Connectors, as `kubectl describe connector` lists them.
@Suite("Operator events")
struct EventTests {
    func events(_ fake: FakeKubernetes, _ name: String) -> [(type: String, reason: String, message: String)] {
        fake.objects(.init(group: "", version: "v1", plural: "events", kind: "Event"))
            .filter {
                $0[path: ["involvedObject", "name"]]?.string == name && $0[path: ["involvedObject", "kind"]]?.string == "Connector"
            }
            .map { ($0["type"]?.string ?? "", $0["reason"]?.string ?? "", $0["message"]?.string ?? "") }
    }

    @Test("refused, rolled out, scaled, paused, stopped and a conflict each give one event")
    func lifecycle() async throws {
        try await withHarness { harness in
            let fake = harness.fake
            // Refused, with the first problem.
            var bad = connector("orders")
            bad[path: ["spec", "routes"]] = [["from": ["gen"], "to": ["nowhere"]]]
            _ = fake.create(.connector, "shop", bad)
            _ = try harness.startOperator(identity: "a")
            try await eventually("the refusal") { events(fake, "orders").contains { $0.reason == "InvalidSpec" } }
            let refusal = try #require(events(fake, "orders").first { $0.reason == "InvalidSpec" })
            #expect(refusal.type == "Warning")
            #expect(refusal.message.contains("spec.routes[0].to[0]"), "\(refusal.message)")

            // Fixed and rolled out.
            _ = fake.update(.connector, "shop", "orders") { $0["spec"] = connector("orders")["spec"] }
            try await eventually("the Deployment") { fake.object(.deployment, "shop", "orders") != nil }
            fake.rollOutDeployments()
            try await eventually("the rollout event") { events(fake, "orders").contains { $0.reason == "RolledOut" } }

            // Scaled by hand (kubectl scale writes spec.deployment.replicas).
            _ = fake.update(.connector, "shop", "orders") { $0[path: ["spec", "deployment", "replicas"]] = 4 }
            try await eventually("the scale event") {
                events(fake, "orders").contains { $0.reason == "Scaled" && $0.message == "from 2 to 4 pods" }
            }

            _ = fake.update(.connector, "shop", "orders") { $0[path: ["spec", "state"]] = "paused" }
            try await eventually("the pause event") { events(fake, "orders").contains { $0.reason == "Paused" && $0.type == "Normal" } }
            _ = fake.update(.connector, "shop", "orders") { $0[path: ["spec", "state"]] = "stopped" }
            try await eventually("the stop event") { events(fake, "orders").contains { $0.reason == "Stopped" } }

            // Nothing new happens: no new events (transitions only).
            let settled = events(fake, "orders").count
            try await Task.sleep(for: .milliseconds(600))
            #expect(events(fake, "orders").count == settled, "\(events(fake, "orders"))")
            #expect(events(fake, "orders").filter { $0.reason == "InvalidSpec" }.count == 1)
            #expect(events(fake, "orders").filter { $0.reason == "RolledOut" }.count == 1)

            // A Service of that name that is not ours: one conflict event, however often it retries.
            _ = fake.create(.service, "shop", ["metadata": ["name": "taken"], "spec": ["ports": [["port": 80]]]])
            _ = fake.create(.connector, "shop", connector("taken"))
            try await eventually("the conflict event") { events(fake, "taken").contains { $0.reason == "ObjectConflict" } }
            try await Task.sleep(for: .milliseconds(800))
            let conflicts = events(fake, "taken").filter { $0.reason == "ObjectConflict" }
            #expect(conflicts.count == 1, "\(conflicts)")
            #expect(conflicts.first?.type == "Warning")
            #expect(
                conflicts.first?.message.contains("Service shop/taken exists and is not controlled by this Connector") == true,
                "\(conflicts)")
        }
    }
}
