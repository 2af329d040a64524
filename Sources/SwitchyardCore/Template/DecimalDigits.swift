/// Integers written as ASCII decimal digits straight into a byte buffer, without a `String`.
public enum DecimalDigits {
    /// Appends `value` in decimal (with a leading `-` when negative).
    @inlinable
    public static func append(_ value: Int64, to output: inout [UInt8]) {
        if value >= 0 && value < 10 {
            output.append(UInt8(truncatingIfNeeded: value) &+ 48)
            return
        }
        // The magnitude as unsigned, so Int64.min has one too.
        var rest = value < 0 ? UInt64(bitPattern: 0 &- value) : UInt64(value)
        if value < 0 { output.append(UInt8(ascii: "-")) }
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        withUnsafeMutableBytes(of: &digits) { buffer in
            var count = 0
            while rest > 0 {
                buffer[23 - count] = UInt8(truncatingIfNeeded: rest % 10) &+ 48
                rest /= 10
                count += 1
            }
            output.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[(24 - count)...]))
        }
    }

    /// Appends a non-negative `Int` in decimal.
    @inlinable
    public static func append(_ value: Int, to output: inout [UInt8]) {
        append(Int64(value), to: &output)
    }
}
