import AgentProtocol
import Foundation
import SandboxCore
import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

/// The host side of one sandbox's agent: an async API over one connection per request, with all
/// blocking I/O on dedicated threads. If the agent dies, every waiting call fails at once with
/// `sandbox_lost` (its connections close); nothing waits forever.
public struct AgentClient: Sendable {
    /// Host directory holding `agent.sock` (`<state>/sandboxes/<id>/agent`).
    public let socketDirectory: String
    public let sandboxID: String
    /// How long a simple request (files, list, signal) may wait for its answer.
    public var requestTimeoutSeconds = 60

    public init(socketDirectory: String, sandboxID: String) {
        self.socketDirectory = socketDirectory
        self.sandboxID = sandboxID
    }

    /// What a process stream ended with.
    public struct ProcessEnd: Sendable {
        public var exited: AgentEvent?
        /// The caller's task was cancelled (the connection closed, so the agent killed a foreground process).
        public var cancelled: Bool
        public var pid: Int32?
        /// The process could not be started (command not found, bad cwd, …): the agent's message.
        public var spawnError: String?
    }

    func openConnection() throws(SandboxError) -> AgentConnection {
        try AgentConnection.open(socketDirectory: socketDirectory, sandboxID: sandboxID)
    }

    /// Runs blocking work on a dedicated thread with typed errors.
    static func blocking<T: Sendable>(_ body: @escaping @Sendable () throws(SandboxError) -> T) async throws(SandboxError) -> T {
        let r: Result<T, SandboxError> = await BlockingThread.run {
            do throws(SandboxError) { return .success(try body()) } catch { return .failure(error) }
        }
        return try r.get()
    }

    /// Checks the agent answers `hello` (throws `sandbox_lost` otherwise); with `expiresAt`, moves
    /// the sandbox's own end there.
    public func hello(expiresAt: Date? = nil) async throws(SandboxError) {
        let me = self
        try await Self.blocking { () throws(SandboxError) in
            _ = try AgentConnection.open(socketDirectory: me.socketDirectory, sandboxID: me.sandboxID, expiresAt: expiresAt)
        }
    }

    /// One request, one answer (plus, for `read`, the file frames before the final `ok`).
    /// An `error` answer becomes a typed ``SandboxError``.
    public func call(_ request: AgentRequest, payload: [UInt8]? = nil) async throws(SandboxError) -> (AgentEvent, [UInt8]) {
        let me = self
        return try await Self.blocking { () throws(SandboxError) in
            let c = try me.openConnection()
            c.setReceiveTimeout(seconds: me.requestTimeoutSeconds)
            try c.send(request)
            if let payload {
                var off = 0
                do throws(SandboxError) {
                    while off < payload.count {
                        let n = min(payload.count - off, Frame.maxPayload - 16)
                        try c.send(Frame(kind: .file, payload: Array(payload[off..<off + n])))
                        off += n
                    }
                } catch {
                    // An agent that refused the request may have answered and closed before the
                    // payload was through: its answer, not the broken pipe, says what happened.
                    if let ev = try? c.receiveEvent(), ev.type == .error { throw Self.error(ev) }
                    throw error
                }
            }
            let ev = try c.receiveEvent()
            if ev.type == .error { throw Self.error(ev) }
            guard ev.type == .content else { return (ev, []) }
            var data: [UInt8] = []
            while true {
                let f = try c.receive()
                if f.kind == .file { data += f.payload; continue }
                guard let end = AgentCoding.event(f) else { throw AgentConnection.lost(me.sandboxID, "sent an unexpected \(f.kind) frame") }
                if end.type == .error { throw Self.error(end) }
                return (ev, data)
            }
        }
    }

    /// Sends input to a process's stdin and waits for the agent to queue it.
    public func sendInput(pid: Int32, data: [UInt8]) async throws(SandboxError) {
        let me = self
        try await Self.blocking { () throws(SandboxError) in
            let c = try me.openConnection()
            c.setReceiveTimeout(seconds: me.requestTimeoutSeconds)
            var off = 0
            repeat {
                let n = min(data.count - off, Frame.maxPayload - 16)
                try c.send(Frame(kind: .stdin, pid: pid, payload: Array(data[off..<off + n])))
                let ev = try c.receiveEvent()
                if ev.type == .error { throw Self.error(ev) }
                off += n
            } while off < data.count
        }
    }

    /// Starts a process (or follows one, with `op: .connect`) and streams its output to `onOutput`
    /// until it ends. `stdin` bytes are sent after the start, then stdin is closed; `stdinFD` is
    /// relayed until its end. `startedOnly`: return as soon as the process started (background).
    /// Cancelling the calling task ends the connection (the agent kills a foreground process).
    public func stream(
        _ request: AgentRequest, stdin: [UInt8]? = nil, stdinFD: Int32? = nil, startedOnly: Bool = false,
        onOutput: (@Sendable (StdStream, [UInt8]) -> Void)?
    ) async throws(SandboxError) -> ProcessEnd {
        let me = self
        let box = ConnectionBox()
        let r: Result<ProcessEnd, SandboxError> = await withTaskCancellationHandler {
            await BlockingThread.run { () -> Result<ProcessEnd, SandboxError> in
                do throws(SandboxError) {
                    let c = try me.openConnection()
                    if !box.set(c) { return .success(ProcessEnd(exited: nil, cancelled: true)) }
                    return .success(try me.follow(c, request, stdin: stdin, stdinFD: stdinFD, startedOnly: startedOnly, onOutput: onOutput))
                } catch {
                    if box.cancelled { return .success(ProcessEnd(exited: nil, cancelled: true)) }
                    return .failure(error)
                }
            }
        } onCancel: {
            box.cancel()
        }
        return try r.get()
    }

    private func follow(
        _ c: AgentConnection, _ request: AgentRequest, stdin: [UInt8]?, stdinFD: Int32?, startedOnly: Bool,
        onOutput: (@Sendable (StdStream, [UInt8]) -> Void)?
    ) throws(SandboxError) -> ProcessEnd {
        try c.send(request)
        let first = try c.receiveEvent()
        if first.type == .error, first.code == .spawnFailed {
            return ProcessEnd(exited: nil, cancelled: false, pid: nil, spawnError: first.message ?? "the process could not be started")
        }
        if first.type == .error { throw Self.error(first) }
        guard first.type == .started, let pid = first.pid else {
            throw AgentConnection.lost(sandboxID, "answered \(first.type.rawValue) to a start")
        }
        if startedOnly { return ProcessEnd(exited: nil, cancelled: false, pid: pid) }
        if let stdin {
            var off = 0
            while off < stdin.count {
                let n = min(stdin.count - off, Frame.maxPayload - 16)
                try c.send(Frame(kind: .stdin, pid: 0, payload: Array(stdin[off..<off + n])))
                off += n
            }
            try c.send(AgentRequest(op: .closeStdin))
        }
        if let stdinFD { try StdinPump.start(from: stdinFD, to: c) }
        while true {
            let f = try c.receive()
            switch f.kind {
            case .stdout: onOutput?(.stdout, f.payload)
            case .stderr: onOutput?(.stderr, f.payload)
            case .control:
                guard let ev = AgentCoding.event(f) else { throw AgentConnection.lost(sandboxID, "sent an undecodable event") }
                if ev.type == .exited { return ProcessEnd(exited: ev, cancelled: false, pid: pid) }
                if ev.type == .error { throw Self.error(ev) }
            default: throw AgentConnection.lost(sandboxID, "sent an unexpected \(f.kind) frame")
            }
        }
    }

    /// Maps an agent `error` event to a ``SandboxError``.
    static func error(_ ev: AgentEvent) -> SandboxError {
        let msg = ev.message ?? "the agent refused the request"
        switch ev.code ?? .system {
        case .invalidPath, .badRequest: return SandboxError(.invalidRequest, msg)
        case .notFound, .noSuchProcess: return SandboxError(.notFound, msg)
        case .permissionDenied: return SandboxError(.invalidRequest, "permission denied: " + msg)
        case .alreadyExists, .notDirectory, .isDirectory, .notEmpty: return SandboxError(.invalidState, msg)
        case .tooLarge: return SandboxError(.limitExceeded, msg)
        case .noSpace:
            return SandboxError(.insufficientStorage, "the sandbox's filesystem is full (\(msg)); free space in the sandbox or raise the profile's workspace/tmp size")
        case .spawnFailed: return SandboxError(.invalidRequest, msg)
        case .system: return SandboxError(.system, msg)
        }
    }
}

/// Holds the connection of a stream so a cancellation arriving before, during or after the
/// connect ends it.
final class ConnectionBox: @unchecked Sendable {
    private let lock = NSLock()
    private var conn: AgentConnection?
    private var _cancelled = false

    var cancelled: Bool { lock.withLock { _cancelled } }

    /// Stores the connection; false (and the connection ended) when cancelled already.
    func set(_ c: AgentConnection) -> Bool {
        lock.withLock {
            conn = c
            if _cancelled { c.cancel() }
            return !_cancelled
        }
    }

    func cancel() {
        lock.withLock {
            _cancelled = true
            conn?.cancel()
        }
    }
}

/// Relays a caller's descriptor (e.g. the CLI's own stdin) into a process's stdin, on its own thread.
enum StdinPump {
    static func start(from fd: Int32, to c: AgentConnection) throws(SandboxError) {
        try DedicatedThread.start(stackSize: 256 << 10, name: "sbx-stdin") {
            var buf = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, 65536) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                if (try? c.send(Frame(kind: .stdin, pid: 0, payload: Array(buf[0..<n])))) == nil { return }
            }
            try? c.send(AgentRequest(op: .closeStdin))
        }
    }
}
