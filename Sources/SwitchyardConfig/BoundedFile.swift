#if canImport(Glibc)
    import Glibc
#endif
import SwitchyardCore

/// Reads whole regular files up to a size limit: documents and `${file:PATH}` references.
///
/// A path may name anything: a device (`/dev/zero` never ends), a FIFO (opening it waits for a
/// writer), a directory, or a file far larger than any document. Only regular files are read
/// (symbolic links are followed); the file is opened without waiting (`O_NONBLOCK`), checked
/// with `fstat`, and read up to `limit` bytes: a file that grows past the limit while it is read
/// is refused too. The calls block on disk I/O: callers on Swift's cooperative pool run this on
/// a queue of their own.
public enum BoundedFile {
    /// Why a file was not read. The description names the path and the reason, never content.
    public enum Failure: Error, Sendable, Equatable, CustomStringConvertible {
        case cannotOpen(path: String, reason: String)
        case notRegular(path: String, kind: String)
        case tooLarge(path: String, limit: Int)
        case cannotRead(path: String, reason: String)

        public var description: String {
            switch self {
            case .cannotOpen(let path, let reason): "cannot open \(ConfigText.quoted(path)): \(reason)"
            case .notRegular(let path, let kind): "\(ConfigText.quoted(path)) is \(kind), not a regular file; only regular files are read"
            case .tooLarge(let path, let limit):
                "\(ConfigText.quoted(path)) is larger than \(BoundedFile.describe(bytes: limit)); at most that much is read"
            case .cannotRead(let path, let reason): "cannot read \(ConfigText.quoted(path)): \(reason)"
            }
        }
    }

    /// The bytes of the regular file at `path`, at most `limit` of them.
    public static func read(_ path: String, limit: Int) -> Result<[UInt8], Failure> {
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return .failure(.cannotOpen(path: path, reason: errorText(errno))) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { return .failure(.cannotRead(path: path, reason: errorText(errno))) }
        let type = info.st_mode & S_IFMT
        guard type == S_IFREG else { return .failure(.notRegular(path: path, kind: kindName(type))) }
        if Int(info.st_size) > limit { return .failure(.tooLarge(path: path, limit: limit)) }
        var bytes = [UInt8](repeating: 0, count: min(Int(info.st_size), limit) + 1)
        var count = 0
        while true {
            if count == bytes.count {
                // The file grew since fstat: read on, up to one byte past the limit.
                guard bytes.count <= limit else { return .failure(.tooLarge(path: path, limit: limit)) }
                bytes.append(contentsOf: repeatElement(0, count: min(max(bytes.count, 4096), limit + 1 - bytes.count)))
            }
            let got = bytes.withUnsafeMutableBytes { buffer in
                Glibc.read(fd, buffer.baseAddress! + count, buffer.count - count)
            }
            if got < 0 {
                if errno == EINTR { continue }
                return .failure(.cannotRead(path: path, reason: errorText(errno)))
            }
            if got == 0 { break }
            count += got
            if count > limit { return .failure(.tooLarge(path: path, limit: limit)) }
        }
        bytes.removeSubrange(count...)
        return .success(bytes)
    }

    /// The text of the regular file at `path` (UTF-8), at most `limit` bytes.
    public static func readText(_ path: String, limit: Int) -> Result<String, Failure> {
        read(path, limit: limit).map { String(decoding: $0, as: UTF8.self) }
    }

    static func kindName(_ type: mode_t) -> String {
        switch type {
        case S_IFDIR: "a directory"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        case S_IFIFO: "a FIFO (named pipe)"
        case S_IFSOCK: "a socket"
        default: "not a regular file"
        }
    }

    static func errorText(_ code: Int32) -> String {
        String(cString: strerror(code))
    }

    /// `1 MiB`, `256 KiB`, or bytes.
    static func describe(bytes: Int) -> String {
        if bytes >= 1 << 20, bytes % (1 << 20) == 0 { return "\(bytes >> 20) MiB" }
        if bytes >= 1 << 10, bytes % (1 << 10) == 0 { return "\(bytes >> 10) KiB" }
        return "\(bytes) bytes"
    }
}
