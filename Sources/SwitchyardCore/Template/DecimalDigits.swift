/// Integers written as ASCII decimal digits straight into a byte buffer, without a `String`.
public enum DecimalDigits {
    /// Appends `value` in decimal (with a leading `-` when negative).
    @inlinable
    public static func append(_ value: Int64, to output: inout [UInt8]) {
        if value >= 0 && value < 10 {
            output.append(UInt8(truncatingIfNeeded: value) &+ 48)
            return
        }
        if value < 0 { output.append(UInt8(ascii: "-")) }
        // The magnitude as unsigned, so Int64.min has one too.
        let magnitude = value < 0 ? UInt64(bitPattern: 0 &- value) : UInt64(value)
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        withUnsafeMutableBytes(of: &digits) { buffer in
            let start = buffer.baseAddress!.assumingMemoryBound(to: UInt8.self)
            let count = width(of: magnitude)
            write(magnitude, width: count, at: start)
            output.append(contentsOf: UnsafeBufferPointer(start: start, count: count))
        }
    }

    /// Appends a non-negative `Int` in decimal.
    @inlinable
    public static func append(_ value: Int, to output: inout [UInt8]) {
        append(Int64(value), to: &output)
    }

    /// The number of decimal digits of `value`.
    @inlinable
    public static func width(of value: UInt64) -> Int {
        var width = 1
        var rest = value
        while rest >= 10 {
            rest /= 10
            width += 1
        }
        return width
    }

    /// Writes the `width` digits of `value` (`width(of: value)`) at `destination`.
    @inlinable
    public static func write(_ value: UInt64, width: Int, at destination: UnsafeMutablePointer<UInt8>) {
        var rest = value
        for position in stride(from: width - 1, through: 0, by: -1) {
            destination[position] = UInt8(truncatingIfNeeded: rest % 10) &+ 48
            rest /= 10
        }
    }
}
