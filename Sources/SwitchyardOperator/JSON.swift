import Foundation

/// A Kubernetes object, or any part of one, as JSON. Numbers keep the integer/floating
/// distinction of the wire text; objects encode with sorted keys, so equal values encode to
/// equal bytes (the operator hashes and compares them).
public indirect enum JSON: Sendable, Equatable, Codable, CustomStringConvertible {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSON])
    case object([String: JSON])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int.self) {
            self = .int(value)
        } else if let value = try? container.decode(Double.self) {
            self = .double(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSON].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSON].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .double(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    /// Parses JSON text.
    public static func parse<Bytes: Collection>(_ bytes: Bytes) throws -> JSON where Bytes.Element == UInt8 {
        try JSONDecoder().decode(JSON.self, from: Data(bytes))
    }

    /// Compact JSON with sorted keys.
    public func encoded() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Encoding a JSON value cannot fail: every case maps to a JSON primitive.
        return Array((try? encoder.encode(self)) ?? Data("null".utf8))
    }

    /// The value of a JSON text, or nil when it is not JSON.
    static func parseText(_ text: String) -> JSON? {
        let bytes = Array(text.utf8)
        return try? JSON.parse(bytes[...])
    }

    public var text: String { String(decoding: encoded(), as: UTF8.self) }
    public var description: String { text }

    // MARK: Access

    public subscript(key: String) -> JSON? {
        get {
            guard case .object(let members) = self else { return nil }
            return members[key]
        }
        set {
            guard case .object(var members) = self else {
                if let newValue { self = .object([key: newValue]) }
                return
            }
            members[key] = newValue
            self = .object(members)
        }
    }

    /// Reads or writes a nested member; writing creates the objects on the way.
    public subscript(path path: [String]) -> JSON? {
        get {
            var node: JSON? = self
            for key in path { node = node?[key] }
            return node
        }
        set {
            guard let first = path.first else { return }
            if path.count == 1 {
                self[first] = newValue
                return
            }
            var child = self[first] ?? .object([:])
            child[path: Array(path.dropFirst())] = newValue
            self[first] = child
        }
    }

    public var string: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    public var int: Int? {
        switch self {
        case .int(let value): return value
        case .double(let value) where value == value.rounded(): return Int(exactly: value)
        default: return nil
        }
    }

    public var bool: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    public var array: [JSON]? {
        if case .array(let value) = self { return value }
        return nil
    }

    public var object: [String: JSON]? {
        if case .object(let value) = self { return value }
        return nil
    }

    /// A Swift value for YAML rendering (Yams dumps these).
    var plain: Any {
        switch self {
        case .null: return NSNull()
        case .bool(let value): return value
        case .int(let value): return value
        case .double(let value): return value
        case .string(let value): return value
        case .array(let items): return items.map(\.plain)
        case .object(let members): return members.mapValues(\.plain)
        }
    }

    /// Converts what Yams (or JSONSerialization) loads into a JSON value.
    static func from(plain value: Any?) -> JSON {
        switch value {
        case nil, is NSNull: return .null
        case let value as Bool: return .bool(value)
        case let value as Int: return .int(value)
        case let value as Double: return .double(value)
        case let value as String: return .string(value)
        case let value as [Any]: return .array(value.map { from(plain: $0) })
        case let value as [String: Any]: return .object(value.mapValues { from(plain: $0) })
        case let value as [AnyHashable: Any]:
            return .object(Dictionary(uniqueKeysWithValues: value.map { ("\($0.key)", from(plain: $0.value)) }))
        default: return .string("\(value!)")
        }
    }

    /// RFC 7386 JSON merge patch: `patch` applied to `self`.
    public func merging(patch: JSON) -> JSON {
        guard case .object(let changes) = patch else { return patch }
        var members = object ?? [:]
        for (key, change) in changes {
            if change == .null {
                members[key] = nil
            } else {
                members[key] = (members[key] ?? .null).merging(patch: change)
            }
        }
        return .object(members)
    }
}

extension JSON: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSON...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSON)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
    public init(nilLiteral: ()) { self = .null }
}
