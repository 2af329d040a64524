import Foundation
import Testing
@testable import RedisConnector

/// The Redis target's own request encoder and reply reader, over a socket pair.
@Suite("RESP encoder and reader")
struct RESPCodecTests {
    /// A connected pair of stream sockets; `writer` feeds what `reader` parses.
    final class SocketPair {
        let writer: Int32
        let reader: Int32

        init() throws {
            var fds: [Int32] = [0, 0]
            guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0 else { throw POSIXError(.EIO) }
            writer = fds[0]
            reader = fds[1]
        }

        func write(_ text: String) {
            let bytes = Array(text.utf8)
            #expect(bytes.withUnsafeBytes { Foundation.write(writer, $0.baseAddress, $0.count) } == bytes.count)
        }

        deinit {
            close(writer)
            close(reader)
        }
    }

    func next(_ reader: inout RESPReader, _ pair: SocketPair) -> String {
        switch reader.next(from: pair.reader) {
        case .ok: "ok"
        case .error(let text): "error: \(text)"
        case .failed(let text): "failed: \(text)"
        }
    }

    @Test func encodesCommandsAsArraysOfBulkStrings() {
        var encoder = RESPEncoder(capacity: 64)
        let blob = Array("SETkey:1".utf8) + Array(repeating: UInt8(ascii: "v"), count: 150)
        encoder.command(blob, [0, 3, 8], [3, 5, 150])
        encoder.command(Array("DELx".utf8), [0, 3, 4], [3, 1, 0])
        let expected =
            "*3\r\n$3\r\nSET\r\n$5\r\nkey:1\r\n$150\r\n" + String(repeating: "v", count: 150) + "\r\n"
            + "*3\r\n$3\r\nDEL\r\n$1\r\nx\r\n$0\r\n\r\n"
        let encoded = Array(encoder.bytes)
        #expect(encoded == Array(expected.utf8))
        encoder.removeAll()
        let empty = encoder.isEmpty
        #expect(empty)
    }

    @Test func readsEveryReplyKindAndReportsErrorsWithTheirText() throws {
        let pair = try SocketPair()
        var reader = RESPReader(capacity: 16)
        // Simple, integer, bulk, nil bulk, an array with a nested error, an error; then a reply
        // split across writes and larger than the reader's initial buffer.
        pair.write("+OK\r\n:42\r\n$5\r\nhello\r\n$-1\r\n*2\r\n$1\r\na\r\n*1\r\n-ERR inner\r\n-WRONGTYPE Operation against a key\r\n")
        #expect(next(&reader, pair) == "ok")
        #expect(next(&reader, pair) == "ok")
        #expect(next(&reader, pair) == "ok")
        #expect(next(&reader, pair) == "ok")
        #expect(next(&reader, pair) == "error: ERR inner")
        #expect(next(&reader, pair) == "error: WRONGTYPE Operation against a key")
        let buffered = reader.hasBufferedBytes
        #expect(!buffered)
        let long = String(repeating: "z", count: 100)
        pair.write("$100\r\n" + long.prefix(40))
        let writer = pair.writer
        let rest = Thread {
            usleep(50_000)
            let bytes = Array((long.dropFirst(40) + "\r\n+PONG\r\n").utf8)
            _ = bytes.withUnsafeBytes { Foundation.write(writer, $0.baseAddress, $0.count) }
        }
        rest.start()
        #expect(next(&reader, pair) == "ok")
        #expect(next(&reader, pair) == "ok")
        let stillBuffered = reader.hasBufferedBytes
        #expect(!stillBuffered)
    }

    @Test func aClosedConnectionOrBytesThatAreNotRESPFail() throws {
        let pair = try SocketPair()
        var reader = RESPReader()
        pair.write("+OK\r\n?what\r\n")
        #expect(next(&reader, pair) == "ok")
        #expect(next(&reader, pair).hasPrefix("failed: unexpected data from the server"))
        reader.reset()
        pair.write("$99999999999999999999\r\n")
        #expect(next(&reader, pair).hasPrefix("failed: unexpected data from the server"))
        reader.reset()
        pair.write("+PAR")
        shutdown(pair.writer, Int32(SHUT_WR))
        #expect(next(&reader, pair) == "failed: server closed the connection")
    }
}
