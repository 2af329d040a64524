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
    public static func hash(key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        @inline(__always) func mix(_ byte: UInt8) {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        if let key {
            mix(1)
            var length = UInt64(key.count)
            for _ in 0..<8 {
                mix(UInt8(truncatingIfNeeded: length))
                length >>= 8
            }
            for byte in key { mix(byte) }
        } else {
            mix(0)
        }
        for byte in value { mix(byte) }
        var z = hash &+ 0x9e37_79b9_7f4a_7c15
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    /// The hash of byte arrays (for tests and callers holding copies).
    public static func hash(key: [UInt8]?, value: [UInt8]) -> UInt64 {
        value.withUnsafeBytes { valueBuffer in
            guard let key else { return hash(key: nil, value: valueBuffer) }
            return key.withUnsafeBytes { hash(key: $0, value: valueBuffer) }
        }
    }

    public var description: String {
        "\(count) records, digest \(String(sum, radix: 16))"
    }
}
