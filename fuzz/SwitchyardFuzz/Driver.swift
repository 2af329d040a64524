#if canImport(Glibc)
    import Glibc
#endif

// The fuzzing driver (scripts/fuzz): one binary, built with `-sanitize=fuzzer` only when the
// package is loaded with SWITCHYARD_FUZZ set; the target is chosen by SWITCHYARD_FUZZ_TARGET.
// Each target must never crash, hang or grow without bound on any input; libFuzzer reports
// the input when one does.

@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

/// The targets, by name.
let targets: [String: @Sendable ([UInt8]) -> Void] = [
    "document": DocumentTarget.run,
    "template": TemplateTarget.run,
    "redis-reply": RedisReplyTarget.run,
    "http-request": HTTPRequestTarget.run,
    "amqp-properties": AMQPPropertiesTarget.run,
]

nonisolated(unsafe) var selected: (@Sendable ([UInt8]) -> Void)?

@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = size == 0 || data == nil ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    selected?(bytes)
    return 0
}

/// SwiftPM names an executable's entry point `<module>_main` and maps `main` to it.
@_cdecl("SwitchyardFuzz_main")
func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    let name = getenv("SWITCHYARD_FUZZ_TARGET").map { String(cString: $0) } ?? ""
    guard let target = targets[name] else {
        let known = targets.keys.sorted().joined(separator: ", ")
        let text = Array("SWITCHYARD_FUZZ_TARGET must name a target: \(known)\n".utf8)
        _ = text.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        return 2
    }
    selected = target
    var count = argc
    var vector = argv
    return runFuzzerDriver(&count, &vector) { data, size in testOneInput(data, size) }
}
