import BuiltinConnectors
import SwitchyardConfig
import SwitchyardCore

/// The document loader: YAML with its limits, `${env:}` and `${file:}` interpolation, the
/// schema, templates, and the checks that span fields. Valid or not, it must answer.
enum DocumentTarget {
    static let loader: DocumentLoader = {
        let registry = ConnectorRegistry()
        registry.register(BuiltinConnectors.family)
        let interpolator = Interpolator(environment: ["TOPIC": "orders", "PASSWORD": "s3cret"]) { path in
            path.hasPrefix("/secret") ? "from-a-file\n" : nil
        }
        return DocumentLoader(registry: registry, interpolator: interpolator)
    }()

    static func run(_ bytes: [UInt8]) {
        guard let text = String(validating: bytes, as: UTF8.self) else { return }
        switch loader.load(text) {
        case .success(let document):
            _ = PipelineGraph(document).dot
        case .failure(let errors):
            _ = errors.description
        }
    }
}
