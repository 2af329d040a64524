import SwitchyardConfig
import SwitchyardCore
import Testing

/// How problems are reported: all of them (up to a cap), each with its path and line, in text
/// that cannot forge lines of the output.
@Suite("Validation reports")
struct ValidationReportTests {
    @Test func aMissingApiVersionAndKindHideNoneOfTheSpecsProblems() throws {
        let issues = try loadInvalid(
            """
            metadata: {name: orders}
            spec:
              sources:
                - name: gen
                  generate: {count: 1}
                - name: idle
                  generate: {count: 1}
              targets:
                - name: out
                  drop: {}
              routes:
                - {from: [gen], to: [out]}
            """)
        let text = issues.map(\.description)
        #expect(text.contains("apiVersion (line 1): required field is missing"), "\(text)")
        #expect(text.contains("kind (line 1): required field is missing"), "\(text)")
        #expect(text.contains("spec.sources[1].name (line 6): source 'idle' is in no route"), "\(text)")
    }

    @Test func aDocumentWithThousandsOfProblemsReportsTheFirstHundredAndCountsTheRest() throws {
        var text = minimalSpec + "\nobservability:\n"
        for index in 0..<300 { text += "  unknown\(index): 1\n" }
        guard case .failure(let errors) = loader().load(text) else {
            Issue.record("the document should be rejected")
            return
        }
        #expect(errors.issues.count == 100)
        #expect(errors.omitted == 200)
        #expect(errors.count == 300)
        #expect(errors.description.hasSuffix("and 200 more problems (only the first 100 are shown)"), "\(errors.description.suffix(200))")
        #expect(errors.issues.first?.line == 13)
    }

    @Test func namesWithNewlinesAndDirectionControlsAreEscapedInErrors() throws {
        let issues = try loadInvalid(
            """
            sources:
              - name: "gen\\nspec.fake (line 1): everything is fine\\u202E"
                generate: {count: 1}
            targets:
              - name: out
                drop: {}
            routes:
              - {from: [gen], to: [out]}
            "evil\\u2028key\\u0007": 1
            """)
        for issue in issues {
            let description = issue.description
            #expect(!description.contains("\n"), "\(description)")
            #expect(!description.unicodeScalars.contains { $0.value == 0x202E || $0.value == 0x2028 || $0.value == 0x07 }, "\(description)")
        }
        let text = issues.map(\.description).joined(separator: "\n")
        #expect(text.contains(#"name 'gen\nspec.fake (line 1): everything is fine\u{202E}' may hold only"#), "\(text)")
        #expect(text.contains(#"unknown field 'evil\u{2028}key\u{7}'"#), "\(text)")
    }

    @Test func nearMissKindsFieldsAndChoicesGetASuggestion() throws {
        let issues = try loadInvalid(
            """
            sources:
              - name: gen
                genrate: {count: 1}
            targets:
              - name: out
                flie: {path: /tmp/out}
            routes:
              - {from: [gen], to: [out], ordering: partiton}
            delivery: {drainTimout: 5s}
            """)
        let text = issues.map(\.description).joined(separator: "\n")
        #expect(text.contains("unknown source kind or field 'genrate'; did you mean 'generate'?"), "\(text)")
        #expect(text.contains("unknown target kind or field 'flie'; did you mean 'file'?"), "\(text)")
        #expect(text.contains("found 'partiton'; did you mean 'partition'?"), "\(text)")
        #expect(text.contains("unknown field 'drainTimout'; did you mean 'drainTimeout'?"), "\(text)")
        // Nothing close: no suggestion.
        let far = try loadInvalid(minimalSpec.replacingOccurrences(of: "file:", with: "spaceship:"))
        #expect(!far.map(\.description).joined().contains("did you mean"), "\(far)")
    }

    @Test func everyKeySetTwiceIsReportedWithItsPathAndBothLines() throws {
        let issues = try loadInvalid(
            """
            sources:
              - name: gen
                generate: {count: 1, count: 2}
            targets:
              - name: out
                file:
                  path: /tmp/a
                  fsync: true
                  path: /tmp/b
            routes:
              - {from: [gen], to: [out]}
            routes:
              - {from: [gen], to: [out]}
            """)
        let text = issues.map(\.description)
        #expect(text.contains("spec.sources[0].generate.count (line 3): 'count' is set twice in this object (first at line 3)"), "\(text)")
        #expect(text.contains("spec.targets[0].file.path (line 9): 'path' is set twice in this object (first at line 7)"), "\(text)")
        #expect(text.contains("spec.routes (line 12): 'routes' is set twice in this object (first at line 10)"), "\(text)")
        #expect(issues.count == 3, "\(text)")
    }
}
