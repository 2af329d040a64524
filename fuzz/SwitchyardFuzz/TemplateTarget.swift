import SwitchyardCore

/// The template engine: the first line is the template, the rest the message value (often
/// JSON, for `{{ value.path }}`); headers and key come from the value's first bytes.
enum TemplateTarget {
    static func run(_ bytes: [UInt8]) {
        let newline = bytes.firstIndex(of: UInt8(ascii: "\n")) ?? bytes.endIndex
        guard let text = String(validating: bytes[..<newline], as: UTF8.self) else { return }
        let value = newline < bytes.endIndex ? Array(bytes[(newline + 1)...]) : []
        guard let template = try? Template(text) else { return }
        let message = Message(
            key: Array(value.prefix(8)), value: value,
            headers: [Header(name: "h", value: Array(value.prefix(4))), Header("trace", "t-1")],
            channel: "orders", timestamp: 1_764_770_000_000, partition: 3, offset: 42, session: 0xabc)
        _ = template.render(message)
        _ = template.renderString(message)
    }
}
