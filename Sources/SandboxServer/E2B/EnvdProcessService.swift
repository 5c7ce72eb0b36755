import Foundation
import HTTPTypes
import Hummingbird
import SandboxCore
import SandboxManager

/// envd's process service (`process.Process/*` on port 49983) over Connect's JSON codec, as the
/// E2B SDKs call it: every process runs through ``SandboxManager`` (quotas, audit) as a
/// background process of the sandbox's agent, so a client that goes away leaves it running and
/// `Connect` reattaches; the stream of `Start`/`Connect` carries `start`, the output, keepalives
/// and `end`.
struct EnvdProcessService: E2BSandboxService {
    static let pathPrefix = "/process.Process/"
    static let keepaliveHeader = HTTPField.Name("Keepalive-Ping-Interval")!

    let manager: SandboxManager
    var port: Int { E2BTarget.envdPort }

    func respond(to request: Request, target: E2BTarget, context: APIRequestContext) async throws -> Response? {
        guard request.uri.path.hasPrefix(Self.pathPrefix) else { return nil }
        let method = String(request.uri.path.dropFirst(Self.pathPrefix.count))
        guard request.method == .post else {
            return ConnectError(.unimplemented, "process.Process/\(method) is called with POST (Connect's JSON codec)").unaryResponse
        }
        switch method {
        case "Start": return await start(request, target)
        case "Connect": return await connect(request, target)
        case "StreamInput": return await streamInput(request, target)
        case "List", "SendInput", "CloseStdin", "SendSignal", "Update":
            do {
                return try await unary(method, request, target)
            } catch {
                return ConnectError(error).unaryResponse
            }
        default:
            return ConnectError(.unimplemented, "process.Process/\(method) is not a method of envd's process service").unaryResponse
        }
    }

    // MARK: Streams

    func start(_ request: Request, _ target: E2BTarget) async -> Response {
        let message: EnvdStartRequest
        let plan: EnvdProcessPlan
        do {
            message = try await Connect.decodeStreamRequest(EnvdStartRequest.self, from: request)
            plan = try EnvdProcessPlan(message, user: target.user)
        } catch {
            return Connect.streamFailure(error)
        }
        let manager = self.manager
        let keepalive = Self.keepaliveInterval(request)
        return Connect.serverStream(EnvdProcessEvent.self) { send in
            let process = try await manager.startProcess(tenantId: target.tenantId, id: target.sandboxId, plan.exec, options: plan.options, actor: target.actor)
            try await Self.follow(manager, target, pid: process.pid, pty: plan.options.pty != nil, replay: true, keepalive: keepalive, send: send)
        }
    }

    func connect(_ request: Request, _ target: E2BTarget) async -> Response {
        let process: SandboxProcess
        do {
            let message = try await Connect.decodeStreamRequest(EnvdSelectRequest.self, from: request)
            process = try await find(message.process, target)
        } catch {
            return Connect.streamFailure(error)
        }
        let manager = self.manager
        let keepalive = Self.keepaliveInterval(request)
        return Connect.serverStream(EnvdProcessEvent.self) { send in
            try await Self.follow(manager, target, pid: process.pid, pty: process.pty, replay: false, keepalive: keepalive, send: send)
        }
    }

    /// Client streaming: the first message selects the process, then each `data` goes to its
    /// stdin or terminal in order; the answer (`{}`) comes once the client ends its stream.
    func streamInput(_ request: Request, _ target: E2BTarget) async -> Response {
        do {
            var pid: Int32?
            for try await message in try Connect.decodeStreamRequests(EnvdStreamInputRequest.self, from: request) {
                switch message {
                case .start(let selector):
                    guard pid == nil else { throw ConnectError(.invalidArgument, "StreamInput: start is sent once, first") }
                    pid = try await find(selector, target).pid
                case .data(let input):
                    guard let pid else { throw ConnectError(.invalidArgument, "StreamInput: the first message must be start (the process selector)") }
                    if let input, !input.bytes.isEmpty {
                        try await manager.sendInput(tenantId: target.tenantId, id: target.sandboxId, pid: pid, data: input.bytes)
                    }
                case .keepalive:
                    continue
                }
            }
            guard pid != nil else { throw ConnectError(.invalidArgument, "StreamInput: the stream carried no start message") }
        } catch {
            return Connect.streamFailure(error)
        }
        return Connect.serverStream(EnvdEmpty.self) { send in try await send(EnvdEmpty()) }
    }

    /// Streams `start`, the process's output (`replay`: from its start, as a `Start` needs so that
    /// nothing written before the follow began is lost; else, for a reattach, from now on, as envd),
    /// keepalives and `end`. The sandbox going away ends the stream with `unavailable` (the SDK:
    /// sandbox gone).
    static func follow(_ manager: SandboxManager, _ target: E2BTarget, pid: Int32, pty: Bool, replay: Bool, keepalive: Duration,
                       send: @escaping @Sendable (EnvdProcessEvent) async throws -> Void) async throws {
        try await send(.start(pid: UInt32(pid)))
        let (events, continuation) = AsyncStream<EnvdProcessEvent>.makeStream()
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    defer { continuation.finish() }
                    let result = try await manager.connect(tenantId: target.tenantId, id: target.sandboxId, pid: pid, replay: replay) { stream, bytes in
                        continuation.yield(pty ? .pty(bytes) : stream == .stdout ? .stdout(bytes) : .stderr(bytes))
                    }
                    continuation.yield(.end(EnvdEndEvent(exitCode: result.exitCode, signal: result.signal)))
                }
                group.addTask {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: keepalive)
                        if Task.isCancelled { break }
                        continuation.yield(.keepalive)
                    }
                }
                for await event in events {
                    try await send(event)
                    if case .end = event { break }
                }
                group.cancelAll()
                try await group.waitForAll()
            }
        } catch {
            throw await Self.streamError(error, manager, target)
        }
    }

    /// A stream's failure in the SDK's terms: a sandbox that is gone is `unavailable`.
    static func streamError(_ error: any Error, _ manager: SandboxManager, _ target: E2BTarget) async -> any Error {
        if error is CancellationError { return error }
        let live = try? await manager.get(tenantId: target.tenantId, id: target.sandboxId)
        if live == nil || live?.state.isFinal == true {
            return ConnectError(.unavailable, "sandbox \(target.sandboxId) was killed or ended while the stream was open")
        }
        return error
    }

    /// The client's `Keepalive-Ping-Interval` (seconds, 1–600), else 50 s as the SDKs ask.
    static func keepaliveInterval(_ request: Request) -> Duration {
        let seconds = request.headers[keepaliveHeader].flatMap { Int($0.trimmingCharacters(in: .whitespaces)) } ?? 50
        return .seconds(min(max(seconds, 1), 600))
    }

    // MARK: Unary calls

    func unary(_ method: String, _ request: Request, _ target: E2BTarget) async throws -> Response {
        let (tenant, id) = (target.tenantId, target.sandboxId)
        switch method {
        case "List":
            _ = try await Connect.decodeUnary(EnvdEmpty.self, from: request)
            let running = try await manager.processes(tenantId: tenant, id: id).filter(\.running)
            return try Connect.unary(EnvdListResponse(processes: running.map(Self.info)))
        case "SendInput":
            let message = try await Connect.decodeUnary(EnvdSendInputRequest.self, from: request)
            let pid = try await find(message.process, target).pid
            if let bytes = message.input?.bytes, !bytes.isEmpty {
                try await manager.sendInput(tenantId: tenant, id: id, pid: pid, data: bytes)
            }
        case "CloseStdin":
            let message = try await Connect.decodeUnary(EnvdSelectRequest.self, from: request)
            let pid = try await find(message.process, target).pid
            try await manager.closeInput(tenantId: tenant, id: id, pid: pid)
        case "SendSignal":
            let message = try await Connect.decodeUnary(EnvdSendSignalRequest.self, from: request)
            guard let signal = try EnvdSignal(json: message.signal).number else {
                throw ConnectError(.invalidArgument, "signal: SIGNAL_UNSPECIFIED names no signal; send SIGNAL_SIGTERM or SIGNAL_SIGKILL")
            }
            let pid = try await find(message.process, target).pid
            try await manager.signal(tenantId: tenant, id: id, pid: pid, signal: signal)
        default:  // Update
            let message = try await Connect.decodeUnary(EnvdUpdateRequest.self, from: request)
            let process = try await find(message.process, target)
            guard let pty = message.pty else { return try Connect.unary(EnvdEmpty()) }
            guard process.pty else {
                throw ConnectError(.failedPrecondition, "process \(process.pid) has no terminal to resize: start it with pty")
            }
            try await manager.resize(tenantId: tenant, id: id, pid: process.pid, size: EnvdProcessPlan.terminalSize(pty))
        }
        return try Connect.unary(EnvdEmpty())
    }

    /// The running process a selector names, or `not_found` (envd forgets processes that ended).
    func find(_ selector: EnvdProcessSelector?, _ target: E2BTarget) async throws -> SandboxProcess {
        guard let selector else { throw ConnectError(.invalidArgument, "process: a process selector (pid or tag) is required") }
        let running = try await manager.processes(tenantId: target.tenantId, id: target.sandboxId).filter(\.running)
        let found: SandboxProcess? = switch selector {
        case .pid(let pid): running.first { $0.pid == Int32(clamping: pid) }
        case .tag(let tag): running.first { $0.tag == tag }
        }
        guard let found else {
            throw ConnectError(.notFound, "no running process with \(selector) in sandbox \(target.sandboxId); list them with process.Process/List")
        }
        return found
    }

    static func info(_ p: SandboxProcess) -> EnvdProcessInfo {
        EnvdProcessInfo(config: EnvdProcessConfig(cmd: p.argv.first ?? "", args: Array(p.argv.dropFirst()), cwd: p.cwd),
                        pid: UInt32(clamping: p.pid), tag: p.tag)
    }
}

/// How envd runs a `StartRequest`: `cmd` with `args` as given (the SDKs send `/bin/bash -l -c
/// CMD`), as `user` (home `/home/user`, the sandbox's user) or `root` (home `/root`, uid 0 of
/// the sandbox's user namespace without capabilities), in `cwd` (default: the home; a relative
/// one is taken from the home), with HOME/USER/LOGNAME of that user under the request's `envs`.
struct EnvdProcessPlan: Sendable {
    var exec: ExecRequest
    var options: ProcessOptions

    init(_ message: EnvdStartRequest, user: String) throws {
        guard let config = message.process, !config.cmd.isEmpty else {
            throw ConnectError(.invalidArgument, "process.cmd is required (for example /bin/bash with args [-l, -c, CMD])")
        }
        let root: Bool
        switch user {
        case "user": root = false
        case "root": root = true
        default: throw ConnectError(.permissionDenied, "user '\(user)' is not available here: run as user (the default) or root")
        }
        let home = root ? "/root" : "/home/user"
        var env = ["HOME": home, "USER": user, "LOGNAME": user]
        env.merge(config.envs) { $1 }
        var cwd = config.cwd.flatMap { $0.isEmpty ? nil : $0 } ?? home
        if cwd == "~" { cwd = home } else if cwd.hasPrefix("~/") { cwd = home + cwd.dropFirst() }
        if !cwd.hasPrefix("/") { cwd = home + "/" + cwd }
        let pty = message.pty.map(Self.terminalSize)
        // stdin: a terminal's input, or a pipe when asked for; else closed at once (EOF), as envd.
        let stdin: ExecRequest.StdinSource = pty != nil || message.stdin == true ? .none : .bytes([])
        exec = ExecRequest(argv: [config.cmd] + config.args, stdin: stdin, env: env, cwd: cwd)
        options = ProcessOptions(background: true, pty: pty, tag: message.tag, asRoot: root)
    }

    /// A PTY size as the agent takes it (0 or absent: 80×24).
    static func terminalSize(_ pty: EnvdPTY) -> TerminalSize {
        TerminalSize(cols: pty.cols == 0 ? 80 : UInt16(clamping: pty.cols), rows: pty.rows == 0 ? 24 : UInt16(clamping: pty.rows))
    }
}
