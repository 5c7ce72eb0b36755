import AgentProtocol
import Foundation
import SandboxCore
import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

/// The host side of one sandbox's agent: an async API over the sandbox's one multiplexed
/// connection (``AgentPool``/``AgentMux``). If the agent dies, every waiting call fails at once
/// with `sandbox_lost`; nothing waits forever.
public struct AgentClient: Sendable {
    /// Host directory holding `agent.sock` (`<state>/sandboxes/<id>/agent`).
    public let socketDirectory: String
    public let sandboxID: String
    let pool: AgentPool
    /// How long a simple request (files, list, signal, input) may wait for its answer.
    public var requestTimeoutSeconds: Int64 = 60

    public init(socketDirectory: String, sandboxID: String, pool: AgentPool) {
        self.socketDirectory = socketDirectory
        self.sandboxID = sandboxID
        self.pool = pool
    }

    /// What a process stream ended with.
    public struct ProcessEnd: Sendable {
        public var exited: ProcessExit?
        /// The caller's task was cancelled (the stream was cancelled, so the agent killed a foreground process).
        public var cancelled: Bool
        public var pid: Int32?
        /// The process could not be started (command not found, bad cwd, …): the agent's message.
        public var spawnError: String?
    }

    func mux() async throws(SandboxError) -> AgentMux {
        try await pool.mux(socketDirectory: socketDirectory, sandboxID: sandboxID)
    }

    /// Checks the agent answers (throws `sandbox_lost` otherwise), connecting if needed; with
    /// `expiresAt`, moves the sandbox's own end there.
    public func hello(expiresAt: Date? = nil) async throws(SandboxError) {
        // A wedged agent is noticed as quickly as a new connection's hello would notice it.
        let (ev, _) = try await mux().call(.ping(expiresAt: expiresAt?.timeIntervalSince1970), timeoutSeconds: AgentPool.helloTimeoutSeconds)
        if case .error(let f) = ev { throw Self.error(f) }
    }

    /// One request, one answer (for `read`, the file's bytes with it). An `error` answer becomes a
    /// typed ``SandboxError``. `payload` follows the request as `file` frames (a `write`).
    public func call(_ request: AgentRequest, payload: [UInt8]? = nil) async throws(SandboxError) -> (AgentEvent, [UInt8]) {
        var maxData: Int64 = 0
        if case .read(_, let limit) = request { maxData = limit ?? Int64(Int32.max) }
        // E2B's `root` user: the sandbox's file operations act as its root (SandboxFileUser).
        let request = SandboxFileUser.isRoot && request.isFileOperation ? .asRoot(request) : request
        let (ev, data) = try await mux().call(request, payload: payload, maxData: maxData, timeoutSeconds: requestTimeoutSeconds)
        if case .error(let f) = ev { throw Self.error(f) }
        return (ev, data)
    }

    /// Sends input to a process's stdin; returns once the agent queued it and the process's
    /// backlog is under the agent's limit (a slow reader slows the writer down).
    public func sendInput(pid: Int32, data: [UInt8]) async throws(SandboxError) {
        var off = 0
        repeat {
            let n = min(data.count - off, Frame.chunk)
            let (ev, _) = try await mux().call(.input(pid: pid, size: Int64(n)), payload: Array(data[off..<off + n]), payloadKind: .stdin,
                                               timeoutSeconds: requestTimeoutSeconds)
            if case .error(let f) = ev { throw Self.error(f) }
            off += n
        } while off < data.count
    }

    /// Starts a process (`.start`) or follows one (`.connect`) and streams its output to
    /// `onOutput` until it ends. `stdin` bytes are sent after the start, then stdin is closed;
    /// `stdinFD` is relayed until its end. `startedOnly`: return as soon as the process started
    /// (a background start). Cancelling the calling task cancels the stream (the agent kills a
    /// foreground process nobody follows any more).
    public func stream(
        _ request: AgentRequest, stdin: [UInt8]? = nil, stdinFD: Int32? = nil, startedOnly: Bool = false,
        onOutput: (@Sendable (StdStream, [UInt8]) -> Void)?
    ) async throws(SandboxError) -> ProcessEnd {
        let mux = try await mux()
        let (id, items) = try mux.openStream(request, endsAtStart: startedOnly)
        let me = self
        let r: Result<ProcessEnd, SandboxError> = await withTaskCancellationHandler {
            await withTaskGroup(of: Void.self) { group -> Result<ProcessEnd, SandboxError> in
                defer { group.cancelAll() }
                var pid: Int32?
                var consumed: Int64 = 0
                for await item in items {
                    switch item {
                    case .output(let s, let bytes):
                        onOutput?(s, bytes)
                        consumed += Int64(bytes.count)
                        if consumed >= AgentFlow.creditBatch {
                            mux.grant(id, consumed)
                            consumed = 0
                        }
                    case .event(.started(let p)):
                        pid = p
                        if startedOnly { return .success(ProcessEnd(exited: nil, cancelled: false, pid: p)) }
                        if let stdin {
                            // Input goes alongside the output (a process may answer before it read everything).
                            group.addTask {
                                if !stdin.isEmpty { try? await me.sendInput(pid: p, data: stdin) }
                                _ = try? await me.call(.closeStdin(pid: p))
                            }
                        }
                        if let stdinFD { StdinPump.start(from: stdinFD, to: mux, pid: p) }
                    case .event(.exited(let e)):
                        return .success(ProcessEnd(exited: e, cancelled: false, pid: pid))
                    case .event(.error(let f)) where f.code == .spawnFailed && pid == nil:
                        return .success(ProcessEnd(exited: nil, cancelled: false, pid: nil, spawnError: f.message))
                    case .event(.error(let f)):
                        return .failure(Self.error(f))
                    case .event(let other):
                        return .failure(AgentMux.lost(me.sandboxID, "sent \(other.name) on a process stream"))
                    case .failed(let e):
                        return .failure(e)
                    }
                }
                // The sequence ended without `exited`: the stream was cancelled.
                return .success(ProcessEnd(exited: nil, cancelled: true, pid: pid))
            }
        } onCancel: {
            mux.cancelStream(id)
        }
        return try r.get()
    }

    /// Maps an agent `error` answer to a ``SandboxError``.
    static func error(_ f: AgentFailure) -> SandboxError {
        let msg = f.message
        switch f.code {
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

/// Relays a caller's descriptor (the CLI's own stdin, `--stdin` inherited) into a process's
/// stdin, on its own thread: a blocking read of a descriptor the caller owns, for the one exec
/// that inherits it (the server never does this). Each chunk waits for the agent's answer, so the
/// relay reads no faster than the process does.
enum StdinPump {
    static func start(from fd: Int32, to mux: AgentMux, pid: Int32) {
        try? DedicatedThread.start(stackSize: 256 << 10, name: "sbx-stdin") {
            var buf = [UInt8](repeating: 0, count: 65536)
            while mux.isOpen {
                let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, 65536) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                if !mux.sendInputBlocking(pid: pid, Array(buf[0..<n])) { return }
            }
            mux.sendNoWait(.closeStdin(pid: pid))
        }
    }
}
