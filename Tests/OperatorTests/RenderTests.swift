import SwitchyardOperator
import Testing

@Suite("Operator rendering")
struct RenderTests {
    let renderer = ConnectorRenderer(registry: registry, defaultImage: "switchyard:test")

    func messages(_ object: JSON) -> [String]? {
        if case .invalid(let messages) = renderer.render(object) { return messages }
        return nil
    }

    @Test("metadata the API server adds does not upset the validator")
    func serverMetadata() {
        var object = connector("orders")
        object["metadata"] = [
            "name": "orders", "namespace": "shop", "uid": "1234", "generation": 4, "resourceVersion": "99", "generateName": "ord-",
            "creationTimestamp": "2026-01-01T00:00:00Z", "managedFields": [["manager": "kubectl"]], "finalizers": ["x"],
            "annotations": ["kubectl.kubernetes.io/last-applied-configuration": "{}"],
        ]
        object["status"] = ["observedGeneration": 3]
        guard case .valid(let rendered) = renderer.render(object) else {
            Issue.record("rejected: \(messages(object) ?? [])")
            return
        }
        #expect(rendered.configMap[path: ["metadata", "annotations", "switchyard.dev/document-generation"]]?.string == "4")
        #expect(rendered.deployment[path: ["metadata", "ownerReferences"]]?.array?.first?["uid"]?.string == "1234")
    }

    @Test("references: literal env values, valueFrom and envFrom variables count as set; others need a default")
    func references() throws {
        var object = connector("orders")
        object[path: ["spec", "targets"]] = [["name": "out", "file": ["path": "/tmp/${env:TOKEN}.ndjson"]]]
        #expect(messages(object) == nil)  // TOKEN comes from a Secret (valueFrom)

        object[path: ["spec", "targets"]] = [["name": "out", "file": ["path": "/tmp/${env:MISSING}.ndjson"]]]
        #expect(messages(object) == nil)  // envFrom may bring it
        object[path: ["spec", "deployment", "envFrom"]] = nil
        let problems = try #require(messages(object))
        #expect(problems.contains { $0.hasPrefix("spec.targets[0].file.path:") && $0.contains("MISSING") }, "\(problems)")
    }

    @Test("a name that cannot name a Service, and turned-off endpoints, are refused")
    func operatorRules() throws {
        var object = connector("Orders_1")
        object[path: ["spec", "observability", "listen"]] = ""
        let problems = try #require(messages(object))
        #expect(problems.contains { $0.hasPrefix("metadata.name:") })
        #expect(problems.contains { $0.hasPrefix("spec.observability.listen:") })
    }

    @Test("the document's hash follows the document, not the operator's fields")
    func hash() throws {
        guard case .valid(let first) = renderer.render(connector("orders", replicas: 2)),
            case .valid(let scaled) = renderer.render(connector("orders", state: "paused", replicas: 9)),
            case .valid(let changed) = renderer.render(connector("orders", count: 11))
        else {
            Issue.record("rejected")
            return
        }
        #expect(first.documentHash == scaled.documentHash)
        #expect(first.documentHash != changed.documentHash)
        #expect(scaled.deployment[path: ["spec", "replicas"]]?.int == 0)
    }
}
