#if canImport(Glibc)
    import Glibc
#endif
@testable import RedisConnector

/// The Redis reply reader: the input is what a server sends on the socket. Every reply must
/// come out as ok, an error text or a failure, until the bytes end.
enum RedisReplyTarget {
    static func run(_ bytes: [UInt8]) {
        var fds: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0 else { return }
        defer {
            close(fds[0])
            close(fds[1])
        }
        var size = Int32(1 << 20)
        setsockopt(fds[1], SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { write(fds[1], $0.baseAddress! + offset, bytes.count - offset) }
            if written <= 0 { return }
            offset += written
        }
        shutdown(fds[1], Int32(SHUT_WR))
        var reader = RESPReader(capacity: 64)
        for _ in 0...(bytes.count + 1) {
            if case .failed = reader.next(from: fds[0]) { return }
        }
        fatalError("more replies than bytes: the reader does not advance")
    }
}
