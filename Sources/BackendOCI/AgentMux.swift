import AgentProtocol
import Foundation
import Synchronization
import NIOCore
import SandboxCore

/// One connection to a sandbox's agent, shared by every call: each request gets an id, and the
/// agent's answers, events and output come back tagged with it. Reading and writing happen on a
/// NIO event loop; callers await their own answer (no thread per call).
///
/// The agent runs inside the sandbox and is treated as hostile: a malformed or oversized frame,
/// an answer to a request never sent, a data frame where none belongs, or more output than the
/// stream was granted is a protocol error that closes the connection. When the connection
/// closes — for that reason, or because the agent died — every call in flight fails at once with
/// `sandbox_lost`, and the next call opens a new connection (``AgentPool``).
// @unchecked: its state lives beside the Mutex (see `lock`), touched only inside `locked`.
final class AgentMux: @unchecked Sendable {
    let sandboxID: String
    private let lock = Mutex<Void>(())
    private var channel: Channel?
    private var nextID: UInt32 = 1
    private var waiters: [UInt32: Waiter] = [:]
    private var closedReason: SandboxError?

    /// What the host does with the frames of one request.
    enum Waiter {
        case call(Call)
        case stream(Stream)
    }

    /// A request answered by one event (for `read`: `content`, `file` frames, then `ok`). Its
    /// state is guarded by the mux's lock.
    final class Call: @unchecked Sendable {
        var continuation: CheckedContinuation<Result<(AgentEvent, [UInt8]), SandboxError>, Never>?
        /// The result, when it came before anyone waited for it.
        var result: Result<(AgentEvent, [UInt8]), SandboxError>?
        /// Called with the result (a caller on a thread of its own, not awaiting).
        var onDone: (@Sendable (Result<(AgentEvent, [UInt8]), SandboxError>) -> Void)?
        var content: (size: Int64, data: [UInt8])?
        /// Most file bytes accepted (a `read`'s limit; 0 for other requests).
        let maxData: Int64
        var timer: Scheduled<Void>?
        init(maxData: Int64) { self.maxData = maxData }
    }

    /// A `start`/`connect` stream: events and output, up to the credit granted.
    final class Stream: @unchecked Sendable {
        let continuation: AsyncStream<StreamItem>.Continuation
        /// A background start's stream ends at `started`.
        let endsAtStart: Bool
        var granted = AgentFlow.initialWindow
        var received: Int64 = 0
        init(_ continuation: AsyncStream<StreamItem>.Continuation, endsAtStart: Bool) {
            self.continuation = continuation
            self.endsAtStart = endsAtStart
        }
    }

    /// One thing a stream delivers.
    enum StreamItem: Sendable {
        case event(AgentEvent)
        case output(StdStream, [UInt8])
        case failed(SandboxError)
    }

    init(sandboxID: String) { self.sandboxID = sandboxID }

    private func locked<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        try lock.withLock { (_: inout Void) throws(E) -> T in try body() }
    }

    static func lost(_ id: String, _ what: String) -> SandboxError {
        SandboxError(.sandboxLost, "the agent of sandbox \(id) \(what); the sandbox is lost: collect it and create a new one")
    }

    var isOpen: Bool { locked { closedReason == nil && channel != nil } }

    func attach(_ channel: Channel) { locked { self.channel = channel } }

    /// Closes the connection; calls in flight fail with `reason`.
    func close(_ reason: SandboxError) {
        let ch = locked { () -> Channel? in
            if closedReason == nil { closedReason = reason }
            return channel
        }
        failAll()
        ch?.close(promise: nil)
    }

    /// The connection closed (EOF, reset, or ``close(_:)``): everything in flight fails.
    func closed() {
        locked {
            if closedReason == nil { closedReason = Self.lost(sandboxID, "closed the connection (the agent died or the sandbox was killed)") }
        }
        failAll()
    }

    private func failAll() {
        let (pending, reason) = locked { () -> ([Waiter], SandboxError) in
            let w = Array(waiters.values)
            waiters = [:]
            return (w, closedReason!)
        }
        for w in pending { finish(w, .failure(reason)) }
    }

    private func finish(_ w: Waiter, _ result: Result<(AgentEvent, [UInt8]), SandboxError>) {
        switch w {
        case .call(let c):
            let (cont, timer) = locked { () -> (CheckedContinuation<Result<(AgentEvent, [UInt8]), SandboxError>, Never>?, Scheduled<Void>?) in
                defer { c.continuation = nil }
                if c.continuation == nil { c.result = result }
                return (c.continuation, c.timer)
            }
            timer?.cancel()
            cont?.resume(returning: result)
            c.onDone?(result)
        case .stream(let s):
            if case .failure(let e) = result { s.continuation.yield(.failed(e)) }
            s.continuation.finish()
        }
    }

    // MARK: sending

    /// Registers a waiter under a new id (fails when the connection is closed).
    private func register(_ make: (UInt32) -> Waiter) throws(SandboxError) -> (UInt32, Channel) {
        try locked { () throws(SandboxError) -> (UInt32, Channel) in
            if let closedReason { throw closedReason }
            guard let channel else { throw Self.lost(sandboxID, "is not connected") }
            let id = nextID
            nextID = nextID == UInt32.max ? 1 : nextID + 1
            waiters[id] = make(id)
            return (id, channel)
        }
    }

    private func remove(_ id: UInt32) -> Waiter? { locked { waiters.removeValue(forKey: id) } }

    private func write(_ frame: Frame, on channel: Channel) -> EventLoopFuture<Void> {
        var buffer = channel.allocator.buffer(capacity: Frame.headerSize + frame.payload.count)
        buffer.writeBytes(frame.encoded())
        return channel.writeAndFlush(buffer)
    }

    private static func encode(_ request: AgentRequest, id: UInt32) throws(SandboxError) -> Frame {
        do { return try AgentCoding.frame(request, id: id) } catch {
            throw SandboxError(.invalidRequest, "the request cannot be sent to the agent: \(error)")
        }
    }

    /// Sends `request` (and `payload` as data frames of `payloadKind`, each written before the
    /// next is queued, so an upload is never copied whole into the channel) and waits for its
    /// answer. An `error` answer is returned as the event; a closed connection, a timeout or a
    /// protocol error is `sandbox_lost`. `hello`: the connection's first request, id 0.
    func call(_ request: AgentRequest, payload: [UInt8]? = nil, payloadKind: FrameKind = .file, maxData: Int64 = 0,
              timeoutSeconds: Int64, hello: Bool = false) async throws(SandboxError) -> (AgentEvent, [UInt8]) {
        let call = Call(maxData: maxData)
        let (id, channel) = try hello
            ? locked { () throws(SandboxError) -> (UInt32, Channel) in
                guard let channel = self.channel else { throw Self.lost(sandboxID, "is not connected") }
                waiters[0] = .call(call)
                return (0, channel)
            }
            : register { _ in .call(call) }
        let frame: Frame
        do { frame = try Self.encode(request, id: id) } catch {
            _ = remove(id)
            throw error
        }
        let timer = channel.eventLoop.scheduleTask(in: .seconds(timeoutSeconds)) { [weak self] in
            guard let self, let w = self.remove(id) else { return }
            self.finish(w, .failure(Self.lost(self.sandboxID, "stopped answering (no reply within \(timeoutSeconds) s)")))
        }
        let settled = locked { () -> Bool in
            call.timer = timer
            return call.result != nil
        }
        if settled { timer.cancel() }
        let result = await withTaskCancellationHandler {
            async let answer = answer(call)
            do {
                try await write(frame, on: channel).get()
                var off = 0
                while let payload, off < payload.count {
                    let n = min(payload.count - off, Frame.chunk)
                    try await write(Frame(kind: payloadKind, id: id, payload: Array(payload[off..<off + n])), on: channel).get()
                    off += n
                }
            } catch {
                // The connection broke while being written to: the agent's answer, if it sent one
                // (a refusal before the upload was through), says more than the broken pipe.
                close(Self.lost(sandboxID, "closed the connection while being written to (\(error))"))
            }
            return await answer
        } onCancel: {
            if let w = remove(id) { finish(w, .failure(SandboxError(.unavailable, "the call was cancelled"))) }
        }
        return try result.get()
    }

    /// Waits for a call's result (it may have come already).
    private func answer(_ call: Call) async -> Result<(AgentEvent, [UInt8]), SandboxError> {
        await withCheckedContinuation { (cont: CheckedContinuation<Result<(AgentEvent, [UInt8]), SandboxError>, Never>) in
            let ready = locked { () -> Result<(AgentEvent, [UInt8]), SandboxError>? in
                if let r = call.result { return r }
                call.continuation = cont
                return nil
            }
            if let ready { cont.resume(returning: ready) }
        }
    }

    /// Starts a `start`/`connect` stream; its items arrive on the returned sequence.
    func openStream(_ request: AgentRequest, endsAtStart: Bool) throws(SandboxError) -> (UInt32, AsyncStream<StreamItem>) {
        let (stream, continuation) = AsyncStream<StreamItem>.makeStream()
        let (id, channel) = try register { _ in .stream(Stream(continuation, endsAtStart: endsAtStart)) }
        let frame: Frame
        do { frame = try Self.encode(request, id: id) } catch {
            _ = remove(id)
            throw error
        }
        write(frame, on: channel).whenFailure { [weak self] error in
            guard let self, let w = self.remove(id) else { return }
            self.finish(w, .failure(Self.lost(self.sandboxID, "closed the connection while being written to (\(error))")))
        }
        return (id, stream)
    }

    /// Stream control: room for `bytes` more output on stream `id`.
    func grant(_ id: UInt32, _ bytes: Int64) {
        let channel = locked { () -> Channel? in
            guard case .stream(let s)? = waiters[id] else { return nil }
            s.granted += bytes
            return self.channel
        }
        guard let channel, let frame = try? AgentCoding.frame(.credit(bytes: bytes), id: id) else { return }
        write(frame, on: channel).whenFailure { _ in }
    }

    /// Stream control: the caller stopped following stream `id` (its sequence ends).
    func cancelStream(_ id: UInt32) {
        guard let w = remove(id) else { return }
        finish(w, .success((.ok, [])))
        guard let channel = locked({ closedReason == nil ? self.channel : nil }),
              let frame = try? AgentCoding.frame(.cancel, id: id) else { return }
        write(frame, on: channel).whenFailure { _ in }
    }

    /// Sends an `input` request from a thread that may block (a relay of a descriptor): returns
    /// once the agent queued the bytes and the process's backlog is under its limit (so the relay
    /// reads no faster than the process), false when the connection closed or the input was refused.
    func sendInputBlocking(pid: Int32, _ data: [UInt8]) -> Bool {
        let answered = DispatchSemaphore(value: 0)
        let call = Call(maxData: 0)
        call.onDone = { _ in answered.signal() }
        guard let (id, channel) = try? register({ _ in .call(call) }),
              let frame = try? AgentCoding.frame(.input(pid: pid, size: Int64(data.count)), id: id) else { return false }
        write(frame, on: channel).whenFailure { _ in }
        write(Frame(kind: .stdin, id: id, payload: data), on: channel).whenFailure { _ in }
        answered.wait()
        guard case .success((.ok, _))? = locked({ call.result }) else { return false }
        return true
    }

    /// Sends a request whose answer nobody waits for (dropped when it comes); its id, if sent.
    @discardableResult
    func sendNoWait(_ request: AgentRequest) -> UInt32? {
        guard let (id, channel) = try? register({ _ in .call(Call(maxData: 0)) }) else { return nil }
        guard let frame = try? AgentCoding.frame(request, id: id) else {
            _ = remove(id)
            return nil
        }
        write(frame, on: channel).whenFailure { _ in }
        return id
    }

    // MARK: receiving (on the event loop)

    /// Routes one frame from the agent to its request; throws on a protocol violation.
    func receive(_ frame: Frame) throws(SandboxError) {
        var done: (Waiter, Result<(AgentEvent, [UInt8]), SandboxError>)?
        try locked { () throws(SandboxError) in
            guard let w = waiters[frame.id] else {
                // Late frames of a request that ended (cancelled, timed out) are dropped; an id
                // never issued is the agent making things up.
                if frame.id != 0 && frame.id < nextID { return }
                throw Self.lost(sandboxID, "answered request \(frame.id), which was never sent (protocol error)")
            }
            switch w {
            case .call(let c): if let r = try route(frame, to: c) { waiters[frame.id] = nil; done = (w, r) }
            case .stream(let s): if try route(frame, to: s) { waiters[frame.id] = nil; done = (w, .success((.ok, []))) }
            }
        }
        if let (w, r) = done { finish(w, r) }
    }

    private func event(_ frame: Frame) throws(SandboxError) -> AgentEvent {
        do { return try AgentCoding.event(frame) } catch {
            throw Self.lost(sandboxID, "sent an undecodable event (\(error))")
        }
    }

    /// The call's result once complete, nil while more frames are due.
    private func route(_ frame: Frame, to c: Call) throws(SandboxError) -> Result<(AgentEvent, [UInt8]), SandboxError>? {
        if var content = c.content {
            if frame.kind == .file {
                content.data += frame.payload
                guard Int64(content.data.count) <= content.size else { throw Self.lost(sandboxID, "sent more file bytes than it announced") }
                c.content = content
                return nil
            }
            let end = try event(frame)
            switch end {
            case .ok:
                guard Int64(content.data.count) == content.size else { throw Self.lost(sandboxID, "sent \(content.data.count) file bytes, not the \(content.size) it announced") }
                return .success((.content(size: content.size), content.data))
            case .error: return .success((end, []))
            default: throw Self.lost(sandboxID, "answered \(end.name) in the middle of a file")
            }
        }
        let ev = try event(frame)
        if case .content(let size) = ev {
            guard size >= 0 && size <= c.maxData else { throw Self.lost(sandboxID, "announced \(size) file bytes where at most \(c.maxData) were asked for") }
            c.content = (size, [])
            return nil
        }
        return .success((ev, []))
    }

    /// Whether the stream ended with this frame.
    private func route(_ frame: Frame, to s: Stream) throws(SandboxError) -> Bool {
        switch frame.kind {
        case .stdout, .stderr:
            s.received += Int64(frame.payload.count)
            guard s.received <= s.granted else {
                throw Self.lost(sandboxID, "sent \(s.received) output bytes on a stream granted \(s.granted) (protocol error)")
            }
            s.continuation.yield(.output(frame.kind == .stdout ? .stdout : .stderr, frame.payload))
            return false
        case .control:
            let ev = try event(frame)
            s.continuation.yield(.event(ev))
            switch ev {
            case .exited, .error: return true
            case .started: return s.endsAtStart
            default: throw Self.lost(sandboxID, "sent \(ev.name) on a process stream (protocol error)")
            }
        default:
            throw Self.lost(sandboxID, "sent a \(frame.kind) frame on a process stream (protocol error)")
        }
    }
}

/// Feeds the channel's bytes to the frame decoder and the frames to the ``AgentMux``.
final class AgentMuxHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    let mux: AgentMux
    private var decoder = FrameDecoder()

    init(mux: AgentMux) { self.mux = mux }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        if let bytes = buffer.readBytes(length: buffer.readableBytes) { decoder.feed(bytes) }
        do {
            while let frame = try decoder.next() { try mux.receive(frame) }
        } catch let e as FrameError {
            mux.close(AgentMux.lost(mux.sandboxID, "sent a malformed frame (\(e))"))
        } catch let e as SandboxError {
            mux.close(e)
        } catch {
            mux.close(AgentMux.lost(mux.sandboxID, "broke the protocol (\(error))"))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        mux.closed()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        mux.close(AgentMux.lost(mux.sandboxID, "closed the connection (\(error))"))
    }
}
