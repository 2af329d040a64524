/// An order-independent digest of a set of records: how many, and the wrapping sum of a 64-bit
/// hash of each record's key and value. Two sides with the same records in any order have
/// equal digests; a record missing, added or altered changes the sum (with probability
/// 1 - 2^-64 per difference).
public struct RecordDigest: Sendable, Equatable, CustomStringConvertible {
    public var count: Int = 0
    public var sum: UInt64 = 0

    public init() {}

    public mutating func add(_ hash: UInt64) {
        count += 1
        sum = sum &+ hash
    }

    /// A record's hash: FNV-1a over a key marker (absent and empty keys differ), the key's
    /// length, the key and the value, then the SplitMix64 finaliser, so that sums of hashes do
    /// not cancel in structured ways.
    ///
    /// `headers`: the values of the headers chosen for the comparison, in the order chosen (nil
    /// for an absent header). With none chosen the hash is that of key and value alone; with
    /// some, the value's length and each header (a presence marker, its length and its bytes)
    /// follow.
    public static func hash(key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer, headers: [UnsafeRawBufferPointer?] = []) -> UInt64
    {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        @inline(__always) func mix(_ byte: UInt8) {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        func mixLength(_ count: Int) {
            var length = UInt64(count)
            for _ in 0..<8 {
                mix(UInt8(truncatingIfNeeded: length))
                length >>= 8
            }
        }
        /// A presence marker, then the length and the bytes when present.
        func mixOptional(_ bytes: UnsafeRawBufferPointer?) {
            guard let bytes else { return mix(0) }
            mix(1)
            mixLength(bytes.count)
            for byte in bytes { mix(byte) }
        }
        mixOptional(key)
        for byte in value { mix(byte) }
        if !headers.isEmpty {
            mixLength(value.count)
            for header in headers { mixOptional(header) }
        }
        var z = hash &+ 0x9e37_79b9_7f4a_7c15
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    /// The hash of byte arrays (for tests and callers holding copies).
    public static func hash(key: [UInt8]?, value: [UInt8], headers: [[UInt8]?] = []) -> UInt64 {
        // Copies into one buffer so that every part has a stable address for the call.
        var storage: [UInt8] = []
        var ranges: [Range<Int>?] = []
        for part in [key, value] + headers {
            guard let part else {
                ranges.append(nil)
                continue
            }
            ranges.append(storage.count..<(storage.count + part.count))
            storage += part
        }
        return storage.withUnsafeBytes { buffer in
            let parts = ranges.map { range in range.map { UnsafeRawBufferPointer(rebasing: buffer[$0]) } }
            return hash(key: parts[0], value: parts[1]!, headers: Array(parts.dropFirst(2)))
        }
    }

    public var description: String {
        "\(count) records, digest \(String(sum, radix: 16))"
    }
}
