import NIOCore
import NIOHTTP1
import SwitchyardCore

/// The query of a request URI, percent-decoded (`a=1&b=x%20y`).
struct Query {
    var items: [String: String] = [:]

    init(_ uri: String) {
        guard let mark = uri.firstIndex(of: "?") else { return }
        for pair in uri[uri.index(after: mark)...].split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = parts.first.flatMap({ Self.decode($0) }) else { continue }
            items[name] = parts.count > 1 ? Self.decode(parts[1]) ?? "" : ""
        }
    }

    subscript(name: String) -> String? { items[name] }

    static func decode(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        var index = text.utf8.startIndex
        let utf8 = text.utf8
        while index != utf8.endIndex {
            let byte = utf8[index]
            if byte == UInt8(ascii: "%") {
                let first = utf8.index(after: index)
                guard first != utf8.endIndex, utf8.index(after: first) != utf8.endIndex,
                    let value = UInt8(String(decoding: [utf8[first], utf8[utf8.index(after: first)]], as: UTF8.self), radix: 16)
                else { return nil }
                bytes.append(value)
                index = utf8.index(first, offsetBy: 2)
            } else {
                bytes.append(byte == UInt8(ascii: "+") ? UInt8(ascii: " ") : byte)
                index = utf8.index(after: index)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }
}

/// A `/tap?at=ROLE:NAME[&limit=N][&seconds=S]` request, accepted (a subscription) or refused.
struct TapStreamRequest {
    struct Refusal: Error {
        var status: HTTPResponseStatus
        var message: String
    }

    var subscription: TapSubscription
    var hub: TapHub
    /// Samples to send before ending; 0: no limit.
    var limit: Int
    /// How long to stream; nil: until the client leaves or the process stops.
    var duration: TimeAmount?

    static func parse(_ query: Query, hub: TapHub) -> Result<TapStreamRequest, Refusal> {
        guard let at = query["at"], let point = TapPoint(parsing: at) else {
            return .failure(Refusal(status: .badRequest, message: "tap needs at=source:NAME, route:NAME or target:NAME"))
        }
        let limit = query["limit"].map { Int($0) }
        if let limit, limit == nil || limit! < 0 {
            return .failure(Refusal(status: .badRequest, message: "limit must be a whole number of samples (0: no limit)"))
        }
        let seconds = query["seconds"].map { Double($0) }
        if let seconds, seconds == nil || !(seconds! > 0 && seconds! <= 86400) {
            return .failure(Refusal(status: .badRequest, message: "seconds must be more than 0 and at most 86400"))
        }
        switch hub.subscribe(point) {
        case .success(let subscription):
            return .success(
                TapStreamRequest(
                    subscription: subscription, hub: hub, limit: (limit ?? 0) ?? 0,
                    duration: (seconds ?? nil).map { .nanoseconds(Int64($0 * 1e9)) }))
        case .failure(let refusal):
            let status: HTTPResponseStatus
            switch refusal {
            case .disabled: status = .forbidden
            case .unknownPoint: status = .notFound
            case .tooMany: status = .tooManyRequests
            }
            return .failure(Refusal(status: status, message: refusal.description))
        }
    }
}

/// A tap answer in progress on one connection.
final class TapStreamState {
    let request: TapStreamRequest
    let started = NIODeadline.now()
    var task: RepeatedTask?
    /// The last time the socket took bytes (or the stream started).
    var progressed = NIODeadline.now()
    var reportedDrops = 0
    var reportedAt = NIODeadline.now()
    var ending = false

    init(request: TapStreamRequest) {
        self.request = request
    }

    var point: TapPoint { request.subscription.point }
}

extension HealthHandler {
    /// How often a streaming tap moves samples from its buffer into the socket.
    static let tapInterval = TimeAmount.milliseconds(50)

    /// Answers `/tap`: a chunked NDJSON body that lasts until the limit, the duration, the
    /// client leaving, or shutdown. Samples move into the socket only while it is writable;
    /// a reader slower than the pipeline makes the tap drop (and count) samples, never makes
    /// the pipeline wait. A reader that takes nothing for the write timeout is disconnected.
    func startStreaming(context: ChannelHandlerContext, request: Request, stream started: TapStreamRequest) {
        let state = TapStreamState(request: started)
        stream = state
        waiting.removeAll()
        timer?.cancel()
        timer = nil
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/x-ndjson")
        headers.add(name: "Cache-Control", value: "no-store")
        headers.add(name: "Connection", value: "close")
        context.writeAndFlush(
            wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: .ok, headers: headers))), promise: nil)
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        state.task = context.eventLoop.scheduleRepeatedTask(initialDelay: .zero, delay: Self.tapInterval) { _ in
            let (handler, context) = bound.value
            handler.pump(context: context)
        }
        if readHeld {
            readHeld = false
            context.read()
        }
    }

    func pump(context: ChannelHandlerContext) {
        guard let state = stream, !state.ending else { return }
        guard context.channel.isActive else {
            stopStreaming()
            return
        }
        let subscription = state.request.subscription
        let now = NIODeadline.now()
        if subscription.isClosed {
            finish(context: context, reason: "shutdown")
            return
        }
        if let duration = state.request.duration, now - state.started >= duration {
            finish(context: context, reason: "duration")
            return
        }
        let limit = state.request.limit
        if limit > 0 && subscription.counts.sent >= limit {
            finish(context: context, reason: "limit")
            return
        }
        guard context.channel.isWritable else {
            if now - state.progressed >= limits.writeTimeout { close(context: context) }
            return
        }
        state.progressed = now
        let room = limit > 0 ? limit - subscription.counts.sent : 512
        var buffer = context.channel.allocator.buffer(capacity: 0)
        for sample in subscription.take(max: min(512, room)) {
            buffer.writeBytes(TapLine(at: state.point, sample).ndjson)
        }
        let counts = subscription.counts
        if counts.dropped > state.reportedDrops && now - state.reportedAt >= .seconds(1) {
            state.reportedDrops = counts.dropped
            state.reportedAt = now
            buffer.writeBytes(
                TapLine(at: state.point.description, counts: .init(seen: counts.seen, sent: counts.sent, dropped: counts.dropped)).ndjson)
        }
        if buffer.readableBytes > 0 {
            context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
    }

    /// Detaches the tap, sends what it still holds (up to the limit) and the final counts,
    /// and closes the connection once they are in the socket.
    func finish(context: ChannelHandlerContext, reason: String) {
        guard let state = stream, !state.ending else { return }
        state.ending = true
        state.task?.cancel()
        let subscription = state.request.subscription
        state.request.hub.unsubscribe(subscription)
        let limit = state.request.limit
        let room = limit > 0 ? max(0, limit - subscription.counts.sent) : Int.max
        var buffer = context.channel.allocator.buffer(capacity: 0)
        for sample in subscription.take(max: room) {
            buffer.writeBytes(TapLine(at: state.point, sample).ndjson)
        }
        let counts = subscription.counts
        // What the limit left in the buffer was not sent: it counts as dropped, so that
        // seen = sent + dropped holds on the last line.
        buffer.writeBytes(
            TapLine(
                at: state.point.description,
                end: .init(seen: counts.seen, sent: counts.sent, dropped: counts.dropped + counts.buffered, reason: reason)
            ).ndjson)
        context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        let promise = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: promise)
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        promise.futureResult.whenComplete { _ in
            let (handler, context) = bound.value
            handler.close(context: context)
        }
        // A reader that never takes the last lines is closed by the write timeout.
        context.eventLoop.scheduleTask(in: limits.writeTimeout) {
            let (handler, context) = bound.value
            handler.close(context: context)
        }
    }

    /// The connection ended: the tap is detached.
    func stopStreaming() {
        guard let state = stream else { return }
        state.task?.cancel()
        state.task = nil
        if !state.ending {
            state.ending = true
            state.request.hub.unsubscribe(state.request.subscription)
        }
    }
}
