import Testing
@testable import SwitchyardCore

/// The NDJSON line the file and s3 targets write reads back as the message it was made from:
/// what `switchyard reconcile` relies on to compare an S3 copy with its source.
struct NDJSONLineTests {
    static func line(_ message: Message) -> [UInt8] {
        var output: [UInt8] = []
        NDJSONLine.append(message, to: &output)
        #expect(output.last == 0x0A)
        return Array(output.dropLast())
    }

    @Test func aLineReadsBackAsTheMessageItWasWrittenFrom() throws {
        let messages = [
            Message(
                key: Array("k-1".utf8), value: Array("{\"a\": \"quote \\\" tab \t newline \n\"}".utf8),
                headers: [Header("trace", "t1"), Header(name: "bin", value: [0xFF, 0x00, 0x80]), Header("trace", "t2")],
                channel: "orders", timestamp: 1_700_000_000_123, partition: 7, offset: 9_007_199_254_740_993),
            Message(key: nil, value: [], channel: "", timestamp: -5, partition: 0, offset: 0),
            Message(
                key: [], value: [0xC3, 0x28, 0x00, 0x01, 0x1F], headers: [], channel: "ünïcode ✓", partition: 2_147_483_647, offset: -1),
            Message(key: [0xFE, 0xFF], value: Array("plain".utf8), headers: [Header("", "")], channel: "c", partition: 1, offset: 1),
        ]
        for message in messages {
            let decoded = try #require(NDJSONLine.decode(Self.line(message)), "\(String(decoding: Self.line(message), as: UTF8.self))")
            #expect(decoded.key == message.key)
            #expect(decoded.value == message.value)
            #expect(decoded.headers == message.headers)
            #expect(decoded.channel == message.channel)
            #expect(decoded.partition == message.partition && decoded.offset == message.offset && decoded.timestamp == message.timestamp)
        }
    }

    @Test func membersInAnotherOrderAndUnknownMembersAreRead() throws {
        let text = #" {"offset": 12, "extra": {"nested": [1, "x"]}, "partition": 3, "value": "v", "channel": "t", "key": null} "#
        let decoded = try #require(NDJSONLine.decode(Array(text.utf8)))
        #expect(
            decoded.key == nil && decoded.value == Array("v".utf8) && decoded.partition == 3 && decoded.offset == 12
                && decoded.channel == "t")
    }

    @Test func whatIsNotSuchALineIsRefused() {
        let refused = [
            "", "written by hand", "[]", "{}", #"{"value": "v"}"#, #"{"value": "v", "partition": 1}"#,
            #"{"value": "v", "partition": 1, "offset": 2} trailing"#, #"{"value": "v", "partition": 99999999999, "offset": 2}"#,
            #"{"valueBase64": "not base64!", "partition": 1, "offset": 2}"#,
            #"{"value": "v", "partition": 1, "offset": 2, "headers": [["a"]]}"#,
            #"{"value": "unterminated, "partition": 1, "offset": 2}"#, #"{"value": "v", "partition": 1, "offset": 99999999999999999999}"#,
        ]
        for text in refused {
            #expect(NDJSONLine.decode(Array(text.utf8)) == nil, "\(text)")
        }
    }

    @Test func base64DecodesWhatItEncodes() {
        for length in 0..<20 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            var text: [UInt8] = []
            Base64Text.encode(bytes, to: &text)
            #expect(Base64Text.decode(text) == bytes)
        }
        #expect(Base64Text.decode(Array("QQ=A".utf8)) == nil)
        #expect(Base64Text.decode(Array("QQ".utf8)) == nil)
    }
}
