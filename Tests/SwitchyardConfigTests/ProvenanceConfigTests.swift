import SwitchyardConfig
import SwitchyardCore
import Testing

@Suite("Provenance settings")
struct ProvenanceConfigTests {
    @Test func sourcesGetTheirClusterOrTheDocumentDefault() throws {
        let document = try loadValid(
            """
            provenance: {cluster: central, hopsHeader: x-hops, maxHops: 3}
            sources:
              - {name: east, cluster: east, skipOrigins: [west, north], generate: {count: 1}}
              - {name: other, generate: {count: 1}}
            targets:
              - {name: t, drop: {}}
            routes:
              - {from: [east, other], to: [t]}
            """)
        let east = try #require(document.provenance(for: document.sources[0]))
        #expect(
            east
                == Provenance(
                    cluster: "east", skipOrigins: ["west", "north"], originHeader: "switchyard-origin", hopsHeader: "x-hops", maxHops: 3))
        #expect(document.provenance(for: document.sources[1])?.cluster == "central")
    }

    @Test func withoutAClusterThereAreNoRules() throws {
        let document = try loadValid(
            """
            sources:
              - {name: a, generate: {count: 1}}
            targets:
              - {name: t, drop: {}}
            routes:
              - {from: [a], to: [t]}
            """)
        #expect(document.provenance(for: document.sources[0]) == nil)
    }

    @Test func badSettingsAreReportedWithTheirPaths() throws {
        let issues = try loadInvalid(
            """
            provenance: {originHeader: h, hopsHeader: h, maxHops: 0}
            sources:
              - {name: a, cluster: "${env:C:-east}", skipOrigins: ["we st"], generate: {count: 1}}
            targets:
              - {name: t, drop: {}}
            routes:
              - {from: [a], to: [t]}
            """)
        let paths = Set(issues.map(\.path))
        #expect(paths.contains("spec.provenance.maxHops"))
        #expect(paths.contains("spec.sources[0].cluster"))
        #expect(paths.contains("spec.sources[0].skipOrigins[0]"))
        let same = try loadInvalid(
            """
            provenance: {originHeader: h, hopsHeader: h}
            sources:
              - {name: a, cluster: east, generate: {count: 1}}
            targets:
              - {name: t, drop: {}}
            routes:
              - {from: [a], to: [t]}
            """)
        #expect(same.map(\.path) == ["spec.provenance.hopsHeader"])
        let unused = try loadInvalid(
            """
            provenance: {maxHops: 3}
            sources:
              - {name: a, generate: {count: 1}}
            targets:
              - {name: t, drop: {}}
            routes:
              - {from: [a], to: [t]}
            """)
        #expect(unused.map(\.path) == ["spec.provenance"])
        #expect(unused.first?.message.contains("no source names its cluster") == true)
    }
}
