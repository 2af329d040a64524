import Testing
@testable import LinkConnector

/// The link target's delivery bookkeeping, event by event, without a receiver.
@Suite("Link send window")
struct LinkSendWindowTests {
    /// Frames of `counts` messages, each message `bytesPerMessage` bytes.
    func frames(_ counts: Int..., bytesPerMessage: Int = 10) -> [LinkSendWindow.Frame] {
        counts.map { LinkSendWindow.Frame(batch: WireBatch(), count: $0, bytes: $0 * bytesPerMessage) }
    }

    /// A window welcomed on its first stream with this credit.
    func window(creditMessages: UInt64 = 1000, creditBytes: UInt64 = 1 << 20) -> LinkSendWindow {
        var window = LinkSendWindow()
        _ = window.welcomed(confirmedThrough: 0, creditMessages: creditMessages, creditBytes: creditBytes)
        return window
    }

    /// The first sequence of each frame taken now.
    func take(_ window: inout LinkSendWindow) -> [UInt64] {
        window.takeSendable().map(\.batch.firstSequence)
    }

    func queue(_ window: inout LinkSendWindow, _ frames: [LinkSendWindow.Frame]) throws -> LinkSendWindow.Queued {
        let queued = window.queue(frames)
        return try #require(queued)
    }

    // MARK: sequences and credit

    @Test func everyMessageGetsTheNextSequenceNumberAcrossBatches() throws {
        var window = window()
        let first = try queue(&window, frames(2, 3))
        let second = try queue(&window, frames(4))
        #expect(first.sequences == 1...5)
        #expect(second.sequences == 6...9)
        #expect(first.waiter != second.waiter)
        #expect(take(&window) == [1, 3, 6])
    }

    @Test func framesLeaveInSequenceOrderWhileCreditLasts() throws {
        var window = window(creditMessages: 10)
        _ = try queue(&window, frames(3, 3, 3, 3))
        #expect(take(&window) == [1, 4, 7])
        #expect(take(&window) == [])
    }

    @Test func byteCreditHoldsFramesBackLikeMessageCredit() throws {
        var window = window(creditMessages: 1000, creditBytes: 100)
        _ = try queue(&window, frames(4, 4, 4, bytesPerMessage: 20))
        #expect(take(&window) == [1])
    }

    @Test func aFrameLargerThanTheCreditLeavesAloneWhenNothingIsOutstanding() throws {
        var window = window(creditMessages: 2)
        _ = try queue(&window, frames(5, 1))
        #expect(take(&window) == [1])
        #expect(take(&window) == [])
    }

    @Test func aFrameWaitsForCreditWhileOthersAreOutstanding() throws {
        var window = window(creditMessages: 5)
        _ = try queue(&window, frames(3))
        #expect(take(&window) == [1])
        _ = try queue(&window, frames(3))
        #expect(take(&window) == [])
    }

    @Test func creditFromAcknowledgementsLetsWaitingFramesGo() throws {
        var window = window(creditMessages: 4)
        _ = try queue(&window, frames(2, 2, 2, 2))
        #expect(take(&window) == [1, 3])
        #expect(take(&window) == [])
        #expect(window.acknowledged(through: 2, creditMessages: 2, creditBytes: 20) == [])
        #expect(take(&window) == [5])
        #expect(take(&window) == [])
        _ = window.acknowledged(through: 4, creditMessages: 2, creditBytes: 20)
        #expect(take(&window) == [7])
    }

    @Test func aLargeFrameLeavesOnceEverythingBeforeItIsAcknowledged() throws {
        var window = window(creditMessages: 3)
        _ = try queue(&window, frames(2, 5))
        #expect(take(&window) == [1])
        #expect(take(&window) == [])
        // The acknowledgement returns no credit, but nothing is outstanding any more.
        _ = window.acknowledged(through: 2, creditMessages: 0, creditBytes: 0)
        #expect(take(&window) == [3])
    }

    // MARK: acknowledgements

    @Test func anAcknowledgementIsCumulativeAndResolvesEveryBatchThroughIt() throws {
        var window = window()
        let a = try queue(&window, frames(2))
        let b = try queue(&window, frames(2))
        let c = try queue(&window, frames(2))
        _ = take(&window)
        #expect(window.acknowledged(through: 4, creditMessages: 4, creditBytes: 40) == [a.waiter, b.waiter])
        #expect(window.acknowledged(through: 6, creditMessages: 2, creditBytes: 20) == [c.waiter])
        #expect(window.entries.isEmpty)
    }

    @Test func anAcknowledgementBelowWhatWasConfirmedDropsNothingButItsCreditCounts() throws {
        var window = window(creditMessages: 4)
        let a = try queue(&window, frames(2))
        _ = try queue(&window, frames(2))
        _ = try queue(&window, frames(2))
        #expect(take(&window) == [1, 3])
        #expect(window.acknowledged(through: 2, creditMessages: 0, creditBytes: 0) == [a.waiter])
        #expect(window.acknowledged(through: 1, creditMessages: 0, creditBytes: 0) == [])
        #expect(window.confirmedThrough == 2)
        #expect(window.acknowledged(through: 2, creditMessages: 0, creditBytes: 0) == [])
        #expect(window.confirmedThrough == 2)
        #expect(window.entries.map(\.first) == [3, 5])
        #expect(take(&window) == [])
        _ = window.acknowledged(through: 2, creditMessages: 2, creditBytes: 20)
        #expect(take(&window) == [5])
    }

    @Test func aBatchIsResolvedOnlyWhenItsLastFrameIsAcknowledged() throws {
        var window = window()
        let batch = try queue(&window, frames(2, 2, 2))
        #expect(take(&window) == [1, 3, 5])
        #expect(window.acknowledged(through: 2, creditMessages: 2, creditBytes: 20) == [])
        #expect(window.acknowledged(through: 5, creditMessages: 2, creditBytes: 20) == [])
        #expect(window.entries.map(\.first) == [5])
        #expect(window.acknowledged(through: 6, creditMessages: 2, creditBytes: 20) == [batch.waiter])
    }

    @Test func severalBatchesInFlightResolveInOrder() throws {
        var window = window()
        var waiters: [UInt64] = []
        for _ in 0..<4 { waiters.append(try queue(&window, frames(1, 2)).waiter) }
        #expect(take(&window).count == 8)
        #expect(window.acknowledged(through: 12, creditMessages: 12, creditBytes: 120) == waiters)
    }

    // MARK: new streams

    @Test func aNewStreamSendsEverythingUnacknowledgedAgainAndCountsIt() throws {
        var window = window()
        _ = try queue(&window, frames(2, 2))
        _ = try queue(&window, frames(3))
        #expect(take(&window) == [1, 3, 5])
        _ = window.acknowledged(through: 2, creditMessages: 2, creditBytes: 20)

        let welcome = window.welcomed(confirmedThrough: 2, creditMessages: 1000, creditBytes: 1 << 20)
        #expect(welcome.resent == 5)
        #expect(window.resentMessages == 5)
        #expect(window.streams == 2)
        #expect(take(&window) == [3, 5])
    }

    @Test func theFirstStreamResendsNothing() throws {
        var window = LinkSendWindow()
        _ = try queue(&window, frames(3))
        let welcome = window.welcomed(confirmedThrough: 0, creditMessages: 10, creditBytes: 1000)
        #expect(welcome.resent == 0)
        #expect(window.resentMessages == 0)
        #expect(take(&window) == [1])
    }

    @Test func aWelcomeConfirmingSomeFramesResolvesTheirBatches() throws {
        var window = window()
        let a = try queue(&window, frames(2, 2))
        let b = try queue(&window, frames(2))
        _ = take(&window)
        let welcome = window.welcomed(confirmedThrough: 4, creditMessages: 1000, creditBytes: 1 << 20)
        #expect(welcome.resolved == [a.waiter])
        #expect(welcome.resent == 2)
        #expect(take(&window) == [5])
        #expect(window.acknowledged(through: 6, creditMessages: 2, creditBytes: 20) == [b.waiter])
    }

    @Test func aNewStreamReplacesTheCreditAndForgetsWhatWasOutstanding() throws {
        var window = window(creditMessages: 7)
        _ = try queue(&window, frames(6, 2))
        #expect(take(&window) == [1])
        // The new stream's credit replaces the 1 left: 7 covers the first frame, not both.
        _ = window.welcomed(confirmedThrough: 0, creditMessages: 7, creditBytes: 1 << 20)
        #expect(take(&window) == [1])
        #expect(take(&window) == [])
        // What went out on the lost stream no longer counts as outstanding, so the oldest frame
        // goes alone beyond a credit smaller than it.
        _ = window.welcomed(confirmedThrough: 0, creditMessages: 3, creditBytes: 1 << 20)
        #expect(take(&window) == [1])
    }

    // MARK: closing

    @Test func closingFailsEveryWaitingBatch() throws {
        var window = window()
        _ = try queue(&window, frames(2))
        let b = try queue(&window, frames(1, 1))
        let c = try queue(&window, frames(2))
        _ = take(&window)
        _ = window.acknowledged(through: 2, creditMessages: 2, creditBytes: 20)
        #expect(Set(window.close()) == [b.waiter, c.waiter])
        #expect(window.close() == [])
        #expect(window.acknowledged(through: 6, creditMessages: 4, creditBytes: 40) == [])
    }

    @Test func aClosedWindowRefusesNewBatches() throws {
        var window = window()
        _ = window.close()
        #expect(window.closed)
        #expect(window.queue(frames(1)) == nil)
        #expect(window.entries.isEmpty)
    }
}
