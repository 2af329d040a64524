import Testing
@testable import SwitchyardCore

@Suite("Units")
struct UnitsTests {
    @Test(arguments: [
        ("250ms", Duration.milliseconds(250)),
        ("1.5s", .milliseconds(1500)),
        ("30s", .seconds(30)),
        ("5m", .seconds(300)),
        ("24h", .seconds(86400)),
        ("1h30m", .seconds(5400)),
        ("2d", .seconds(172_800)),
        ("100us", .microseconds(100)),
        ("10ns", .nanoseconds(10)),
        ("0", .zero),
        (" 20ms ", .milliseconds(20)),
    ])
    func durationsParse(text: String, expected: Duration) {
        #expect(Units.parseDuration(text) == expected)
    }

    @Test(arguments: ["10", "5 parsecs", "", "ms", "1.5", "-5s", "10 s", "1h30", "3 weeks", "s10"])
    func badDurationsAreRejected(text: String) {
        #expect(Units.parseDuration(text) == nil)
    }

    @Test(arguments: [
        ("1048576", 1_048_576),
        ("512KiB", 524_288),
        ("64MiB", 67_108_864),
        ("1GiB", 1_073_741_824),
        ("1GB", 1_000_000_000),
        ("10KB", 10_000),
        ("1MB", 1_000_000),
        ("100B", 100),
        ("0", 0),
        ("1.5MiB", 1_572_864),
    ])
    func sizesParse(text: String, expected: Int) {
        #expect(Units.parseSize(text) == expected)
    }

    @Test(arguments: ["12XB", "", "MiB", "-1", "ten", "1.5", "5 parsecs"])
    func badSizesAreRejected(text: String) {
        #expect(Units.parseSize(text) == nil)
    }

    @Test func sizesFormatTheWayDocumentsWriteThem() {
        #expect(Units.formatSize(64 << 20) == "64MiB")
        #expect(Units.formatSize(512 << 10) == "512KiB")
        #expect(Units.formatSize(1 << 30) == "1GiB")
        #expect(Units.formatSize(1000) == "1000B")
        for size in [1 << 20, 3 << 10, 12345] {
            #expect(Units.parseSize(Units.formatSize(size)) == size)
        }
    }
}
