/// Redis's request encoding: each command an array of bulk strings (`*N\r\n`, then `$len\r\n`,
/// the bytes and `\r\n` per argument), binary safe. A whole pipeline is encoded into one buffer
/// that is sent with as few writes as the socket allows.
struct RESPEncoder {
    private(set) var bytes: [UInt8] = []

    init(capacity: Int = 0) {
        bytes.reserveCapacity(capacity)
    }

    var isEmpty: Bool { bytes.isEmpty }

    /// Empties the buffer, keeping its capacity up to `limit` bytes so that one batch of large
    /// values does not pin its memory for the life of the connection.
    mutating func removeAll(keepingAtMost limit: Int = 4 << 20) {
        if bytes.capacity > limit {
            bytes = []
            bytes.reserveCapacity(64 * 1024)
        } else {
            bytes.removeAll(keepingCapacity: true)
        }
    }

    /// Appends one command; argument `i` is `blob[offsets[i]..<offsets[i] + lengths[i]]`.
    mutating func command(_ blob: [UInt8], _ offsets: [Int], _ lengths: [Int]) {
        bytes.append(UInt8(ascii: "*"))
        appendDecimal(offsets.count)
        appendCRLF()
        blob.withUnsafeBufferPointer { source in
            for index in offsets.indices {
                let length = lengths[index]
                bytes.append(UInt8(ascii: "$"))
                appendDecimal(length)
                appendCRLF()
                if length > 0 {
                    let start = offsets[index]
                    bytes.append(contentsOf: UnsafeBufferPointer(rebasing: source[start..<(start + length)]))
                }
                appendCRLF()
            }
        }
    }

    private mutating func appendCRLF() {
        bytes.append(13)
        bytes.append(10)
    }

    /// A non-negative integer in decimal, without going through a String.
    private mutating func appendDecimal(_ value: Int) {
        precondition(value >= 0)
        if value < 10 {
            bytes.append(UInt8(truncatingIfNeeded: value) &+ 48)
            return
        }
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        var rest = value
        withUnsafeMutableBytes(of: &digits) { buffer in
            while rest > 0 {
                buffer[count] = UInt8(truncatingIfNeeded: rest % 10) &+ 48
                rest /= 10
                count += 1
            }
            for index in stride(from: count - 1, through: 0, by: -1) {
                bytes.append(buffer[index])
            }
        }
    }
}
