/// A run of messages of one submitted batch, on its way to one target.
///
/// `messages[i]` is message `indices?[i] ?? (base + i)` of the batch that `handle` tracks;
/// confirming it decrements that message's outstanding count in the ledger.
struct Delivery: Sendable {
    let handle: AckHandle
    var messages: [Message]
    var indices: [Int32]?
    var base: Int
    var bytes: Int

    init(handle: AckHandle, messages: [Message], indices: [Int32]?, base: Int = 0, bytes: Int) {
        self.handle = handle
        self.messages = messages
        self.indices = indices
        self.base = base
        self.bytes = bytes
    }

    var count: Int { messages.count }

    func batchIndex(_ i: Int) -> Int {
        if let indices { return Int(indices[i]) }
        return base + i
    }

    func confirmAll() {
        if let indices {
            handle.confirm(indices.lazy.map { Int($0) })
        } else {
            handle.confirm(base..<(base + messages.count))
        }
    }

    /// Splits off the first `count` messages.
    mutating func split(first count: Int) -> Delivery {
        let head = Array(messages[0..<count])
        let headBytes = head.reduce(0) { $0 + $1.accountedBytes }
        let headIndices = indices.map { Array($0[0..<count]) }
        let first = Delivery(handle: handle, messages: head, indices: headIndices, base: base, bytes: headBytes)
        messages = Array(messages[count...])
        indices = indices.map { Array($0[count...]) }
        base += count
        bytes -= headBytes
        return first
    }
}
