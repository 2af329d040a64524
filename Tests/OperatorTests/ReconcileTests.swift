import Foundation
import SwitchyardConfig
import SwitchyardCore
import SwitchyardOperator
import SwitchyardRuntime
import Testing

@Suite("Operator reconcile")
struct ReconcileTests {
    @Test("a new Connector gets a ConfigMap, Deployment, Service and PDB it owns, and a status")
    func createsOwnedObjects() async throws {
        try await withHarness { harness in
            let fake = harness.fake
            let created = fake.create(.connector, "shop", connector("orders"))
            let uid = created[path: ["metadata", "uid"]]!.string!
            _ = try harness.startOperator(identity: "a")
            try await eventually("the Deployment") { fake.object(.deployment, "shop", "orders") != nil }
            try await eventually("the Service and PDB") {
                fake.object(.service, "shop", "orders") != nil && fake.object(.podDisruptionBudget, "shop", "orders") != nil
            }
            let configMap = try #require(fake.object(.configMap, "shop", "orders"))
            let deployment = try #require(fake.object(.deployment, "shop", "orders"))
            let service = try #require(fake.object(.service, "shop", "orders"))
            let pdb = try #require(fake.object(.podDisruptionBudget, "shop", "orders"))
            for object in [configMap, deployment, service, pdb] {
                let owners = try #require(object[path: ["metadata", "ownerReferences"]]?.array)
                #expect(owners.count == 1)
                #expect(owners[0]["uid"]?.string == uid)
                #expect(owners[0]["kind"]?.string == "Connector")
                #expect(owners[0]["apiVersion"]?.string == "switchyard.dev/v1alpha1")
                #expect(owners[0]["controller"]?.bool == true)
                #expect(owners[0]["blockOwnerDeletion"]?.bool == true)
                #expect(object[path: ["metadata", "labels", "app.kubernetes.io/instance"]]?.string == "orders")
            }

            // The document: what `switchyard run` loads, without the operator's fields and with
            // references left as they are (secrets are never resolved into it).
            let document = try #require(configMap[path: ["data", "connector.yaml"]]?.string)
            #expect(!document.contains("deployment"))
            #expect(!document.contains("connector-secrets"))
            #expect(document.contains("${env:BATCH:-100}"))
            let loader = DocumentLoader(registry: registry, interpolator: Interpolator(environment: [:]))
            guard case .success(let loaded) = loader.load(document) else {
                Issue.record("the mounted document does not load")
                return
            }
            #expect(loaded.name == "orders")
            #expect(loaded.generation == 1)

            let pod = try #require(deployment[path: ["spec", "template", "spec"]])
            let container = try #require(pod["containers"]?.array?.first)
            #expect(deployment[path: ["spec", "replicas"]]?.int == 2)
            #expect(container["image"]?.string == "example.com/switchyard:1.2.3")
            #expect(container["args"] == ["run", "-c", "/etc/switchyard/connector.yaml"])
            #expect(container[path: ["livenessProbe", "httpGet", "path"]]?.string == "/livez")
            #expect(container[path: ["readinessProbe", "httpGet", "path"]]?.string == "/readyz")
            #expect(container[path: ["ports"]]?.array?.first?["containerPort"]?.int == 9090)
            #expect(container[path: ["securityContext", "runAsNonRoot"]]?.bool == true)
            #expect(container[path: ["securityContext", "readOnlyRootFilesystem"]]?.bool == true)
            #expect(container[path: ["securityContext", "allowPrivilegeEscalation"]]?.bool == false)
            #expect(container[path: ["securityContext", "capabilities", "drop"]] == ["ALL"])
            #expect(container[path: ["securityContext", "seccompProfile", "type"]]?.string == "RuntimeDefault")
            #expect(pod[path: ["securityContext", "runAsNonRoot"]]?.bool == true)
            #expect(pod[path: ["securityContext", "seccompProfile", "type"]]?.string == "RuntimeDefault")
            #expect(container["volumeMounts"]?.array?.contains { $0["mountPath"]?.string == "/tmp" } == true)
            #expect(pod["volumes"]?.array?.contains { $0["name"]?.string == "tmp" && $0["emptyDir"] != nil } == true)
            // Longer than the 30 s drain timeout.
            #expect(try #require(pod["terminationGracePeriodSeconds"]?.int) > 30)
            let spec = try #require(created[path: ["spec", "deployment"]])
            #expect(container["env"] == spec["env"])
            #expect(container["envFrom"] == spec["envFrom"])
            #expect(container["resources"] == spec["resources"])
            for key in ["serviceAccountName", "nodeSelector", "tolerations", "affinity"] { #expect(pod[key] == spec[key], "\(key)") }
            let hash = try #require(
                deployment[path: ["spec", "template", "metadata", "annotations", "switchyard.dev/document-hash"]]?.string)
            #expect(configMap[path: ["metadata", "annotations", "switchyard.dev/document-hash"]]?.string == hash)
            #expect(service[path: ["spec", "ports"]]?.array?.first?["port"]?.int == 9090)
            #expect(pdb[path: ["spec", "selector"]] == deployment[path: ["spec", "selector"]])

            try await eventually("status Valid=True") {
                fake.object(.connector, "shop", "orders")?.condition("Valid")?["status"]?.string == "True"
            }
            var status = try #require(fake.object(.connector, "shop", "orders"))
            #expect(status[path: ["status", "observedGeneration"]]?.int == 1)
            #expect(status.condition("Ready")?["status"]?.string == "False")
            #expect(status.condition("Progressing")?["status"]?.string == "True")
            #expect(status[path: ["status", "selector"]]?.string?.contains("app.kubernetes.io/instance=orders") == true)
            // The status subresource does not bump the generation.
            #expect(status[path: ["metadata", "generation"]]?.int == 1)

            // The pods come up: the Deployment watch brings the change to the Connector's status.
            fake.rollOutDeployments()
            try await eventually("status Ready=True") {
                fake.object(.connector, "shop", "orders")?.condition("Ready")?["status"]?.string == "True"
            }
            status = try #require(fake.object(.connector, "shop", "orders"))
            #expect(status[path: ["status", "readyReplicas"]]?.int == 2)
            #expect(status[path: ["status", "replicas"]]?.int == 2)
            #expect(status[path: ["status", "runningGeneration"]]?.int == 1)
            #expect(status.condition("Progressing")?["status"]?.string == "False")
            #expect(status.condition("Ready")?["observedGeneration"]?.int == 1)

            // Deleting the Connector collects what it owned (the garbage collector follows the owner references).
            fake.delete(.connector, "shop", "orders")
            #expect(fake.object(.deployment, "shop", "orders") == nil)
            #expect(fake.object(.configMap, "shop", "orders") == nil)
        }
    }

    @Test("a spec change rolls the pod template hash; a replicas change does not")
    func specChangeRollsPods() async throws {
        try await withHarness { harness in
            let fake = harness.fake
            try await harness.runOrders()
            let firstHash = try #require(fake.podTemplateHash("shop", "orders"))

            fake.update(.connector, "shop", "orders") { $0[path: ["spec", "sources"]] = [["name": "gen", "generate": ["count": 20]]] }
            #expect(fake.object(.connector, "shop", "orders")?[path: ["metadata", "generation"]]?.int == 2)
            try await eventually("a new pod template hash") {
                fake.podTemplateHash("shop", "orders") != firstHash
            }
            let configMap = try #require(fake.object(.configMap, "shop", "orders"))
            #expect(configMap[path: ["metadata", "annotations", "switchyard.dev/document-generation"]]?.string == "2")
            #expect(configMap[path: ["data", "connector.yaml"]]?.string?.contains("count: 20") == true)
            let secondHash = try #require(fake.podTemplateHash("shop", "orders"))
            #expect(configMap[path: ["metadata", "annotations", "switchyard.dev/document-hash"]]?.string == secondHash)
            try await eventually("observedGeneration 2") {
                fake.object(.connector, "shop", "orders")?[path: ["status", "observedGeneration"]]?.int == 2
            }

            // Scaling: the Deployment changes, the document and the pods' template do not.
            let configMapWrites = fake.writes(.configMap, namespace: "shop", name: "orders").count
            fake.update(.connector, "shop", "orders") { $0[path: ["spec", "deployment", "replicas"]] = 5 }
            try await eventually("5 replicas") { fake.object(.deployment, "shop", "orders")?[path: ["spec", "replicas"]]?.int == 5 }
            #expect(fake.podTemplateHash("shop", "orders") == secondHash)
            try await eventually("observedGeneration 3") {
                fake.object(.connector, "shop", "orders")?[path: ["status", "observedGeneration"]]?.int == 3
            }
            #expect(fake.writes(.configMap, namespace: "shop", name: "orders").count == configMapWrites)
        }
    }

    @Test("an invalid spec sets Valid=False with the validator's messages and leaves the Deployment as it is")
    func invalidSpecLeavesDeployment() async throws {
        try await withHarness { harness in
            let fake = harness.fake
            fake.create(.connector, "shop", connector("orders"))
            _ = try harness.startOperator(identity: "a")
            try await eventually("status Valid=True") {
                fake.object(.connector, "shop", "orders")?.condition("Valid")?["status"]?.string == "True"
            }
            let before = try #require(fake.object(.deployment, "shop", "orders"))
            let configMapBefore = try #require(fake.object(.configMap, "shop", "orders"))
            let deploymentWrites = fake.writes(.deployment, namespace: "shop", name: "orders").count

            fake.update(.connector, "shop", "orders") { object in
                object[path: ["spec", "routes"]] = [["from": ["gen"], "to": ["nowhere"]]]
                object[path: ["spec", "deployment", "replicas"]] = 7
            }
            try await eventually("status Valid=False") {
                fake.object(.connector, "shop", "orders")?.condition("Valid")?["status"]?.string == "False"
            }
            let status = try #require(fake.object(.connector, "shop", "orders"))
            let valid = try #require(status.condition("Valid"))
            #expect(valid["reason"]?.string == "InvalidSpec")
            let message = try #require(valid["message"]?.string)
            #expect(message.contains("spec.routes[0].to[0]"), "\(message)")
            #expect(message.contains("no target is named 'nowhere'"), "\(message)")
            #expect(valid["observedGeneration"]?.int == 2)
            #expect(status[path: ["status", "observedGeneration"]]?.int == 2)
            // Let a resync or a stray event pass: still untouched.
            try await Task.sleep(for: .milliseconds(300))
            #expect(fake.object(.deployment, "shop", "orders") == before)
            #expect(fake.object(.configMap, "shop", "orders") == configMapBefore)
            #expect(fake.writes(.deployment, namespace: "shop", name: "orders").count == deploymentWrites)

            // Fixed: rolled out again.
            fake.update(.connector, "shop", "orders") { $0[path: ["spec", "routes"]] = [["from": ["gen"], "to": ["out"]]] }
            try await eventually("7 replicas after the fix") {
                fake.object(.deployment, "shop", "orders")?[path: ["spec", "replicas"]]?.int == 7
            }
            try await eventually("status Valid=True again") {
                fake.object(.connector, "shop", "orders")?.condition("Valid")?["status"]?.string == "True"
            }
        }
    }

    @Test("a Connector invalid from the start gets no workload")
    func invalidFromTheStart() async throws {
        try await withHarness { harness in
            let fake = harness.fake
            var bad = connector("broken")
            bad[path: ["spec", "sources"]] = [["name": "gen", "generate": ["count": "many"]]]
            fake.create(.connector, "shop", bad)
            _ = try harness.startOperator(identity: "a")
            try await eventually("status Valid=False") {
                fake.object(.connector, "shop", "broken")?.condition("Valid")?["status"]?.string == "False"
            }
            let status = try #require(fake.object(.connector, "shop", "broken"))
            #expect(status.condition("Valid")?["message"]?.string?.contains("spec.sources[0].generate.count") == true)
            #expect(status.condition("Ready")?["reason"]?.string == "NotDeployed")
            #expect(fake.object(.deployment, "shop", "broken") == nil)
            #expect(fake.object(.configMap, "shop", "broken") == nil)
        }
    }

    @Test("paused scales to zero and keeps everything; stopped removes the workload and keeps the resource")
    func pausedAndStopped() async throws {
        try await withHarness { harness in
            let fake = harness.fake
            fake.create(.connector, "shop", connector("orders"))
            _ = try harness.startOperator(identity: "a")
            try await eventually("the Deployment") { fake.object(.deployment, "shop", "orders")?[path: ["spec", "replicas"]]?.int == 2 }
            let hash = fake.podTemplateHash("shop", "orders")

            fake.update(.connector, "shop", "orders") { $0[path: ["spec", "state"]] = "paused" }
            try await eventually("zero replicas") { fake.object(.deployment, "shop", "orders")?[path: ["spec", "replicas"]]?.int == 0 }
            #expect(fake.podTemplateHash("shop", "orders") == hash)
            #expect(fake.object(.configMap, "shop", "orders") != nil)
            #expect(fake.object(.service, "shop", "orders") != nil)
            #expect(fake.object(.podDisruptionBudget, "shop", "orders") != nil)
            fake.rollOutDeployments()
            try await eventually("Ready=False Paused") {
                fake.object(.connector, "shop", "orders")?.condition("Ready")?["reason"]?.string == "Paused"
            }

            fake.update(.connector, "shop", "orders") { $0[path: ["spec", "state"]] = "stopped" }
            try await eventually("the Deployment removed") { fake.object(.deployment, "shop", "orders") == nil }
            try await eventually("Ready=False Stopped") {
                fake.object(.connector, "shop", "orders")?.condition("Ready")?["reason"]?.string == "Stopped"
            }
            #expect(fake.object(.connector, "shop", "orders") != nil)
            #expect(fake.object(.configMap, "shop", "orders") != nil)

            fake.update(.connector, "shop", "orders") { $0[path: ["spec", "state"]] = "running" }
            try await eventually("the Deployment back") {
                fake.object(.deployment, "shop", "orders")?[path: ["spec", "replicas"]]?.int == 2
            }
        }
    }

    @Test("an expired watch is recovered by listing again", arguments: [true, false])
    func expiredWatchRelists(inStream: Bool) async throws {
        try await withHarness { harness in
            let fake = harness.fake
            fake.goneInStream = inStream
            fake.create(.connector, "shop", connector("first"))
            _ = try harness.startOperator(identity: "a")
            try await eventually("the first Deployment") { fake.object(.deployment, "shop", "first") != nil }
            try await eventually("the three watches open (Connectors, Deployments, Jobs)") { fake.openWatches == 3 }
            let lists = fake.listCount(.connector)
            #expect(lists == 1)

            // Other objects change, the history is compacted past the watch's version, and the
            // watch ends: with an ERROR 410 in the stream, or by closing so that the next watch
            // request from the old version gets HTTP 410.
            fake.create(.configMap, "shop", ["metadata": ["name": "unrelated"], "data": ["a": "b"]])
            fake.compact()
            fake.closeWatches(inStreamGone: inStream)
            try await eventually("a new list of Connectors") { fake.listCount(.connector) > lists }
            #expect(fake.goneCount >= 1)

            // Watching again: a Connector created now is reconciled.
            fake.create(.connector, "shop", connector("second"))
            try await eventually("the second Deployment") { fake.object(.deployment, "shop", "second") != nil }
        }
    }

    @Test("a bookmark moves the watch's resourceVersion, so compaction after it needs no list")
    func bookmarkAvoidsRelist() async throws {
        try await withHarness { harness in
            let fake = harness.fake
            fake.goneInStream = false
            // One pod each: no idle-member probe, whose reads could move a reconcile past the quiet period.
            fake.create(.connector, "shop", connector("first", replicas: 1))
            _ = try harness.startOperator(identity: "a")
            try await eventually("the first Deployment") { fake.object(.deployment, "shop", "first") != nil }
            try await eventually("the three watches open (Connectors, Deployments, Jobs)") { fake.openWatches == 3 }
            // The reconcile ends with the status write; on a loaded machine it can come later
            // than the quiet period below would wait.
            try await eventually("the first status") {
                fake.object(.connector, "shop", "first")?[path: ["status", "observedGeneration"]] != nil
            }
            // The operator is done with the Connector: no write but Lease renewals for 500 ms (a
            // status write after the bookmark would move the Connector watch past it).
            func writes() -> Int { fake.requests.filter { $0.method != "GET" && !$0.path.contains("/leases") }.count }
            var quiet = (count: writes(), since: ContinuousClock.now)
            try await eventually("the operator is idle") {
                let now = writes()
                if now != quiet.count { quiet = (now, ContinuousClock.now) }
                return ContinuousClock.now - quiet.since >= .milliseconds(500)
            }
            fake.create(.configMap, "shop", ["metadata": ["name": "unrelated"], "data": ["a": "b"]])
            // Compacted exactly to the bookmark (Lease renewals move the server's version on).
            let bookmark = fake.sendBookmarks()
            try await Task.sleep(for: .seconds(1))  // time to read it, even on a loaded machine
            let lists = fake.listCount(.connector)
            fake.compact(below: bookmark)
            fake.closeWatches(inStreamGone: false)
            try await eventually("watches open again") { fake.openWatches == 3 }
            fake.create(.connector, "shop", connector("second", replicas: 1))
            try await eventually("the second Deployment") { fake.object(.deployment, "shop", "second") != nil }
            #expect(fake.listCount(.connector) == lists)
            #expect(fake.goneCount == 0)
            // The new watches (Connectors, Deployments, Jobs) started from the bookmark's version.
            #expect(
                fake.requests.filter { $0.query.contains("watch=true") && $0.query.contains("resourceVersion=\(bookmark)&") }.count == 3,
                "bookmark \(bookmark); history \(fake.recentHistory(24)); watches: \(fake.requests.filter { $0.query.contains("watch=true") }.map { "\($0.path)?\($0.query)" })"
            )
        }
    }

    @Test("a Deployment deleted by hand is recreated (its watch event reaches the owner)")
    func deletedDeploymentComesBack() async throws {
        try await withHarness { harness in
            let fake = harness.fake
            try await harness.runOrders()
            let first = fake.object(.deployment, "shop", "orders")?[path: ["metadata", "uid"]]
            fake.delete(.deployment, "shop", "orders")
            try await eventually("a new Deployment") {
                let uid = fake.object(.deployment, "shop", "orders")?[path: ["metadata", "uid"]]
                return uid != nil && uid != first
            }
        }
    }

    @Test("one namespace: Connectors elsewhere are left alone")
    func oneNamespace() async throws {
        try await withHarness { harness in
            let fake = harness.fake
            fake.create(.connector, "shop", connector("orders"))
            fake.create(.connector, "other", connector("orders", namespace: "other"))
            _ = try harness.startOperator(identity: "a", namespace: "shop")
            try await eventually("the Deployment in shop") { fake.object(.deployment, "shop", "orders") != nil }
            try await Task.sleep(for: .milliseconds(300))
            #expect(fake.object(.deployment, "other", "orders") == nil)
        }
    }

    @Test("a name taken by an object the Connector does not own is an error, retried with backoff")
    func notOwned() async throws {
        try await withHarness { harness in
            let fake = harness.fake
            fake.create(.configMap, "shop", ["metadata": ["name": "orders"], "data": ["mine": "yes"]])
            fake.create(.connector, "shop", connector("orders"))
            _ = try harness.startOperator(identity: "a")
            try await eventually("several attempts") {
                fake.requests.filter { $0.path == "/api/v1/namespaces/shop/configmaps/orders" }.count >= 3
            }
            #expect(fake.object(.configMap, "shop", "orders")?[path: ["data", "mine"]]?.string == "yes")
            #expect(fake.object(.deployment, "shop", "orders") == nil)
            // Removed by its owner: the next attempt succeeds.
            fake.delete(.configMap, "shop", "orders")
            try await eventually("the Deployment") { fake.object(.deployment, "shop", "orders") != nil }
        }
    }

    @Test("the operator's metrics count reconciles and show the queue and the leader")
    func metrics() async throws {
        try await withHarness { harness in
            try await harness.runOrders()
            try await eventually("reconciles counted") {
                let text = String(decoding: MetricsSetup.render(), as: UTF8.self)
                return text.contains("switchyard_operator_reconciles_total{result=\"success\"}")
                    && text.contains("switchyard_operator_leader")
                    && text.contains("switchyard_operator_queue_depth")
            }
        }
    }
}
