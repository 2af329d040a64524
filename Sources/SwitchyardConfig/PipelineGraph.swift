import SwitchyardCore

/// The pipeline of a document as a picture (`switchyard graph`): sources, routes and targets as
/// nodes, messages flowing left to right, the dead-letter target reached by dashed edges from
/// every target that can send to it. Rendered as Graphviz DOT and as Mermaid, from the document
/// alone (no connection is made).
public struct PipelineGraph: Sendable {
    public struct Node: Sendable, Equatable {
        public var id: String
        public var label: String
        public var role: String
    }

    public struct Edge: Sendable, Equatable {
        public var from: String
        public var to: String
        public var label: String?
        public var deadLetter: Bool
    }

    public var name: String
    public var nodes: [Node] = []
    public var edges: [Edge] = []

    public init(_ document: ConnectorDocument) {
        name = document.name ?? "connector"
        var sourceID: [String: String] = [:]
        var targetID: [String: String] = [:]
        for (index, source) in document.sources.enumerated() {
            sourceID[source.name] = "s\(index)"
            nodes.append(Node(id: "s\(index)", label: "\(source.name)\n\(source.kind)", role: "source"))
        }
        for (index, target) in document.targets.enumerated() {
            targetID[target.name] = "t\(index)"
            let role = target.name == document.delivery.deadLetter ? "dead-letter target" : "target"
            nodes.append(Node(id: "t\(index)", label: "\(target.name)\n\(target.kind)", role: role))
        }
        for (index, route) in document.routes.enumerated() {
            var label = route.name
            if let channel = route.filter.channel { label += "\nchannel \(channel.pattern)" }
            for header in route.filter.headers { label += "\n\(header.name)=\(String(decoding: header.value, as: UTF8.self))" }
            if route.ordering != .partition { label += "\nordering \(route.ordering.rawValue)" }
            nodes.append(Node(id: "r\(index)", label: label, role: "route"))
            for source in route.from {
                if let id = sourceID[source] { edges.append(Edge(from: id, to: "r\(index)", label: nil, deadLetter: false)) }
            }
            for target in route.to {
                if let id = targetID[target] { edges.append(Edge(from: "r\(index)", to: id, label: nil, deadLetter: false)) }
            }
        }
        if let deadLetter = document.delivery.deadLetter, let deadID = targetID[deadLetter] {
            let routed = Set(document.routes.flatMap(\.to))
            for target in document.targets where target.name != deadLetter && routed.contains(target.name) {
                edges.append(Edge(from: targetID[target.name]!, to: deadID, label: "dead letters", deadLetter: true))
            }
        }
    }

    /// Graphviz DOT (`switchyard graph -c DOC | dot -Tsvg > pipeline.svg`).
    public var dot: String {
        var lines = [
            "digraph \(Self.dotQuoted(name)) {", "  rankdir=LR;", "  node [fontname=\"Helvetica\", fontsize=11];",
            "  edge [fontname=\"Helvetica\", fontsize=10];",
        ]
        for node in nodes {
            let shape: String
            switch node.role {
            case "source": shape = "shape=box, style=\"rounded,filled\", fillcolor=\"#dbeafe\""
            case "route": shape = "shape=diamond, style=filled, fillcolor=\"#f3f4f6\""
            case "dead-letter target": shape = "shape=box, style=\"filled,dashed\", fillcolor=\"#fee2e2\""
            default: shape = "shape=box, style=filled, fillcolor=\"#dcfce7\""
            }
            lines.append("  \(node.id) [label=\(Self.dotQuoted(node.label)), \(shape)];")
        }
        for edge in edges {
            var attributes: [String] = []
            if let label = edge.label { attributes.append("label=\(Self.dotQuoted(label))") }
            if edge.deadLetter { attributes.append("style=dashed") }
            lines.append("  \(edge.from) -> \(edge.to)" + (attributes.isEmpty ? "" : " [\(attributes.joined(separator: ", "))]") + ";")
        }
        lines.append("}")
        return lines.joined(separator: "\n") + "\n"
    }

    /// Mermaid (a flowchart, e.g. for a Markdown page that renders Mermaid).
    public var mermaid: String {
        var lines = ["flowchart LR"]
        for node in nodes {
            let text = Self.mermaidText(node.label)
            switch node.role {
            case "source": lines.append("  \(node.id)([\"\(text)\"])")
            case "route": lines.append("  \(node.id){\"\(text)\"}")
            default: lines.append("  \(node.id)[\"\(text)\"]")
            }
        }
        for edge in edges {
            if edge.deadLetter {
                lines.append("  \(edge.from) -. \"\(Self.mermaidText(edge.label ?? ""))\" .-> \(edge.to)")
            } else {
                lines.append("  \(edge.from) --> \(edge.to)")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func dotQuoted(_ text: String) -> String {
        var out = "\""
        for character in text {
            switch character {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default: out.append(character)
            }
        }
        return out + "\""
    }

    /// Text inside a quoted Mermaid label: quotes as an entity, line breaks as `<br/>`, angle
    /// brackets escaped so a name cannot inject markup.
    static func mermaidText(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "\"": out += "#quot;"
            case "\n": out += "<br/>"
            case "<": out += "#lt;"
            case ">": out += "#gt;"
            default: out.append(character)
            }
        }
        return out
    }
}
