import SwitchyardCore
import Yams

/// Parses YAML text into a ``ConfigNode`` tree that remembers lines.
public enum YAMLLoader {
    public static func parse(_ text: String) -> Result<ConfigNode, ConfigIssue> {
        do {
            guard let root = try Yams.compose(yaml: text) else {
                return .failure(ConfigIssue(path: "document", line: 1, message: "the document is empty"))
            }
            return .success(convert(root))
        } catch let error as YamlError {
            return .failure(issue(for: error))
        } catch {
            return .failure(ConfigIssue(path: "document", line: nil, message: "not valid YAML: \(error)"))
        }
    }

    static func issue(for error: YamlError) -> ConfigIssue {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
            return ConfigIssue(path: "document", line: mark.line, message: "not valid YAML: \(problem) (column \(mark.column))")
        case .duplicatedKeysInMapping(let duplicates, let context):
            return ConfigIssue(path: "document", line: context.mark.line, message: "a key is set twice in one object: \(duplicates.joined(separator: ", "))")
        default:
            return ConfigIssue(path: "document", line: nil, message: "not valid YAML: \(error)")
        }
    }

    static func convert(_ node: Node) -> ConfigNode {
        let line = node.mark?.line ?? 0
        switch node {
        case .scalar(let scalar):
            if scalar.style == .plain && (scalar.string == "" || scalar.string == "~" || scalar.string == "null" || scalar.string == "Null" || scalar.string == "NULL") {
                return ConfigNode(.null, line: line)
            }
            return ConfigNode(.scalar(.init(text: scalar.string, quoted: scalar.style != .plain)), line: line)
        case .sequence(let sequence):
            return ConfigNode(.sequence(sequence.map(convert)), line: line)
        case .mapping(let mapping):
            let entries = mapping.map { pair in
                ConfigNode.Entry(key: pair.key.string ?? "\(pair.key)", keyLine: pair.key.mark?.line ?? line, value: convert(pair.value))
            }
            return ConfigNode(.mapping(entries), line: line)
        case .alias(let alias):
            return ConfigNode(.null, line: alias.mark?.line ?? line)
        }
    }
}
