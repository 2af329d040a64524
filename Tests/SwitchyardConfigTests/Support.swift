import BuiltinConnectors
import SwitchyardConfig
import SwitchyardCore
import Testing

/// A loader with the built-in connectors, a fixed environment and in-memory files.
func loader(environment: [String: String] = [:], files: [String: String] = [:]) -> DocumentLoader {
    DocumentLoader(
        registry: ConnectorRegistry([BuiltinConnectors.family]),
        interpolator: Interpolator(environment: environment, readFile: { path in files[path] }))
}

/// Loads `text` and requires success, recording the issues otherwise.
func loadValid(
    _ text: String, environment: [String: String] = [:], files: [String: String] = [:],
    sourceLocation: SourceLocation = #_sourceLocation
) throws -> ConnectorDocument {
    switch loader(environment: environment, files: files).load(text) {
    case .success(let document):
        return document
    case .failure(let errors):
        Issue.record("the document should load, but:\n\(errors)", sourceLocation: sourceLocation)
        throw errors
    }
}

/// Loads `text` and requires failure; returns the issues.
func loadInvalid(
    _ text: String, environment: [String: String] = [:], files: [String: String] = [:],
    sourceLocation: SourceLocation = #_sourceLocation
) throws -> [ConfigIssue] {
    switch loader(environment: environment, files: files).load(text) {
    case .success:
        Issue.record("the document should be rejected", sourceLocation: sourceLocation)
        throw LoadedAnyway()
    case .failure(let errors):
        return errors.issues
    }
}

struct LoadedAnyway: Error {}

/// The smallest valid spec: a generator into a file.
let minimalSpec = """
    sources:
      - name: gen
        generate:
          count: 10
    targets:
      - name: out
        file:
          path: /tmp/out.ndjson
    routes:
      - from: [gen]
        to: [out]
    """
