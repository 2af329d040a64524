import Foundation

/// The exit status of a child whose output was read to the end, or nil when Foundation has
/// not seen it exit within `limit` seconds. With many children coming and going, Foundation
/// can miss an exit (the child stays a zombie) and `waitUntilExit` then never returns; the
/// callers treat nil as "exited, status unknown" and judge by the output they read.
public func exitStatus(_ process: Process, within limit: TimeInterval = 15) -> Int32? {
    let deadline = Date().addingTimeInterval(limit)
    while process.isRunning {
        if Date() > deadline { return nil }
        usleep(2_000)
    }
    return process.terminationStatus
}
