#if canImport(Glibc)
    import Glibc
#endif

/// The default byte budget: half the container's memory limit (cgroup v2 `memory.max` or
/// cgroup v1 `memory.limit_in_bytes`), leaving the rest to the runtime, client libraries and
/// buffers; 256MiB when there is no limit.
public enum MemoryLimit {
    public static let fallback = 256 << 20

    public static func containerLimit() -> Int? {
        for path in ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"] {
            guard let file = fopen(path, "r") else { continue }
            defer { fclose(file) }
            var buffer = [CChar](repeating: 0, count: 64)
            guard fgets(&buffer, 64, file) != nil else { continue }
            let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
            let text = String(decoding: bytes, as: UTF8.self).trimmingNewlines
            if text == "max" { return nil }
            // cgroup v1 reports a huge number when unlimited.
            if let value = Int(text), value > 0, value < 1 << 50 { return value }
        }
        return nil
    }

    public static func defaultBudget() -> Int {
        guard let limit = containerLimit() else { return fallback }
        return max(16 << 20, limit / 2)
    }
}

extension String {
    var trimmingNewlines: String {
        var slice = Substring(self)
        while let last = slice.last, last == "\n" || last == " " || last == "\r" { slice.removeLast() }
        return String(slice)
    }
}
