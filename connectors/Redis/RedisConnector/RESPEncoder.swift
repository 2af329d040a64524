import SwitchyardCore

/// Redis's request encoding: each command an array of bulk strings (`*N\r\n`, then `$len\r\n`,
/// the bytes and `\r\n` per argument), binary safe. A whole pipeline is encoded into one buffer
/// that is sent with as few writes as the socket allows.
///
/// The buffer is raw memory written through a pointer: each command's size is computed first,
/// room made once, and the bytes stored without the per-append checks of an array.
struct RESPEncoder: ~Copyable {
    private var storage: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    private(set) var count = 0

    init(capacity: Int = 64 * 1024) {
        self.capacity = max(capacity, 64)
        storage = .allocate(capacity: self.capacity)
    }

    deinit { storage.deallocate() }

    var isEmpty: Bool { count == 0 }

    /// The encoded bytes; valid until the next mutation.
    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: storage, count: count) }

    /// Empties the buffer, keeping its capacity up to `limit` bytes so that one batch of large
    /// values does not pin its memory for the life of the connection.
    mutating func removeAll(keepingAtMost limit: Int = 4 << 20) {
        count = 0
        if capacity > limit {
            storage.deallocate()
            capacity = 64 * 1024
            storage = .allocate(capacity: capacity)
        }
    }

    /// Appends one command; argument `i` is `blob[offsets[i]..<offsets[i] + lengths[i]]`.
    mutating func command(_ blob: [UInt8], _ offsets: [Int], _ lengths: [Int]) {
        var size = 3 + Self.digits(offsets.count)
        for length in lengths { size += 5 + Self.digits(length) + length }
        reserve(size)
        var cursor = storage + count
        cursor = Self.header(UInt8(ascii: "*"), offsets.count, at: cursor)
        blob.withUnsafeBufferPointer { source in
            for index in offsets.indices {
                let length = lengths[index]
                cursor = Self.header(UInt8(ascii: "$"), length, at: cursor)
                if length > 0 {
                    cursor.update(from: source.baseAddress! + offsets[index], count: length)
                    cursor += length
                }
                cursor[0] = 13
                cursor[1] = 10
                cursor += 2
            }
        }
        count = cursor - storage
    }

    private mutating func reserve(_ extra: Int) {
        if count + extra <= capacity { return }
        var grown = capacity * 2
        while grown < count + extra { grown *= 2 }
        let larger = UnsafeMutablePointer<UInt8>.allocate(capacity: grown)
        larger.update(from: storage, count: count)
        storage.deallocate()
        storage = larger
        capacity = grown
    }

    /// Writes `marker`, `value` in decimal and CRLF at `cursor`; returns the position after.
    private static func header(_ marker: UInt8, _ value: Int, at cursor: UnsafeMutablePointer<UInt8>) -> UnsafeMutablePointer<UInt8> {
        cursor[0] = marker
        let width = digits(value)
        DecimalDigits.write(UInt64(value), width: width, at: cursor + 1)
        cursor[width + 1] = 13
        cursor[width + 2] = 10
        return cursor + width + 3
    }

    /// The number of decimal digits of a non-negative value.
    static func digits(_ value: Int) -> Int {
        DecimalDigits.width(of: UInt64(value))
    }
}
