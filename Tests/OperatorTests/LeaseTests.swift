import Foundation
import SwitchyardOperator
import Testing

@Suite("Operator leader election")
struct LeaseTests {
    /// Writes to anything the operator reconciles (not the Lease), by token.
    static func reconcileWrites(_ fake: FakeKubernetes, token: String) -> Int {
        fake.requests.filter { $0.token == token && $0.method != "GET" && !$0.path.contains("/leases") }.count
    }

    @Test("two operators contend for the Lease: only the holder reconciles, the other takes over when it stops")
    func twoOperators() async throws {
        try await withHarness(tokens: ["token-a", "token-b"]) { harness in
            let fake = harness.fake
            let a = try harness.makeOperator(identity: "operator-a", token: "token-a")
            let b = try harness.makeOperator(identity: "operator-b", token: "token-b")
            let taskA = Task { await a.run() }
            let taskB = Task { await b.run() }
            harness.running += [taskA, taskB]
            try await eventually("a leader") { a.elector.isLeader || b.elector.isLeader }
            let aLeads = a.elector.isLeader
            let (leader, follower) = aLeads ? (a, b) : (b, a)
            let (leaderToken, followerToken) = aLeads ? ("token-a", "token-b") : ("token-b", "token-a")
            let leaderTask = aLeads ? taskA : taskB

            fake.create(.connector, "shop", connector("orders"))
            try await eventually("the Deployment") { fake.object(.deployment, "shop", "orders") != nil }
            // Several renewals pass; the follower keeps trying and never acts.
            for _ in 0..<10 {
                #expect(!(a.elector.isLeader && b.elector.isLeader))
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(!follower.elector.isLeader)
            #expect(Self.reconcileWrites(fake, token: leaderToken) > 0)
            #expect(Self.reconcileWrites(fake, token: followerToken) == 0)
            let lease = try #require(fake.object(.lease, "switchyard-system", "switchyard-operator"))
            #expect(lease[path: ["spec", "holderIdentity"]]?.string == (leader === a ? "operator-a" : "operator-b"))
            // The follower asked and was refused (it read the Lease and did not write it).
            #expect(fake.requests.contains { $0.token == followerToken && $0.path.contains("/leases/") })

            // The leader stops (and releases the Lease): the follower takes over and reconciles.
            leaderTask.cancel()
            await leaderTask.value
            try await eventually("the follower leads") { follower.elector.isLeader }
            #expect(!leader.elector.isLeader)
            fake.create(.connector, "shop", connector("payments"))
            try await eventually("the new leader's Deployment") { fake.object(.deployment, "shop", "payments") != nil }
            #expect(Self.reconcileWrites(fake, token: followerToken) > 0)
            let taken = try #require(fake.object(.lease, "switchyard-system", "switchyard-operator"))
            #expect(taken[path: ["spec", "holderIdentity"]]?.string == (follower === a ? "operator-a" : "operator-b"))
            #expect(try #require(taken[path: ["spec", "leaseTransitions"]]?.int) >= 1)
        }
    }

    @Test("a Lease whose holder stopped renewing is taken over after its duration, not before")
    func takeoverAfterExpiry() async throws {
        try await withHarness { harness in
            let fake = harness.fake
            fake.create(
                .lease, "switchyard-system",
                [
                    "metadata": ["name": "switchyard-operator"],
                    "spec": [
                        "holderIdentity": "crashed-replica", "leaseDurationSeconds": 2, "leaseTransitions": 3,
                        "acquireTime": "2026-01-01T00:00:00.000000Z", "renewTime": "2026-01-01T00:00:00.000000Z",
                    ],
                ])
            fake.create(.connector, "shop", connector("orders"))
            let started = ContinuousClock.now
            let b = try harness.startOperator(identity: "operator-b")
            try await Task.sleep(for: .milliseconds(500))
            // Seen for less than the Lease's duration: not taken, whatever its renewTime says
            // (the other node's clock is not trusted).
            #expect(!b.elector.isLeader)
            #expect(fake.object(.deployment, "shop", "orders") == nil)
            try await eventually("operator-b leads") { b.elector.isLeader }
            #expect(ContinuousClock.now - started >= .seconds(2))
            let lease = try #require(fake.object(.lease, "switchyard-system", "switchyard-operator"))
            #expect(lease[path: ["spec", "holderIdentity"]]?.string == "operator-b")
            #expect(lease[path: ["spec", "leaseTransitions"]]?.int == 4)
            try await eventually("the Deployment") { fake.object(.deployment, "shop", "orders") != nil }
        }
    }

    @Test("a leader that cannot renew stops reconciling")
    func lostLease() async throws {
        try await withHarness { harness in
            let fake = harness.fake
            let a = try harness.startOperator(identity: "operator-a")
            try await eventually("operator-a leads") { a.elector.isLeader }
            // Someone else writes the Lease (as a replica that saw it expire would).
            fake.update(.lease, "switchyard-system", "switchyard-operator") { lease in
                lease[path: ["spec", "holderIdentity"]] = "operator-z"
                lease[path: ["spec", "leaseDurationSeconds"]] = 30
            }
            try await eventually("operator-a stepped down") { !a.elector.isLeader }
            fake.create(.connector, "shop", connector("orders"))
            try await Task.sleep(for: .milliseconds(400))
            #expect(fake.object(.deployment, "shop", "orders") == nil)
        }
    }
}
