import Foundation
import Logging
import SandboxCore
import SandboxLinux

/// The WASM backend: JavaScript under QuickJS (`qjs.wasm`) and any WASI preview1 command module,
/// run by WasmKit with hard limits and the approved-tools bridge.
///
/// A request is JavaScript when it carries `code` and its `codeFileName` ends in `.js`/`.mjs`
/// (`argv` become the script's `scriptArgs[1...]`), and a WASI module when `argv[0]` is a host path
/// ending in `.wasm` (the rest are its arguments). The guest sees only `/workspace` (the spec's
/// `workspaceDirectory`, or a per-run temp dir), the environment of profile + request, the
/// request's stdin, and no sockets.
///
/// Limits: `timeout` (a fuel watchdog stops running code within ~1 ms; the worker mode also kills
/// the process), `memoryBytes` caps linear memory (→ `oom`, as does QuickJS's own out-of-memory exit
/// 3), `outputBytes` per stream (→ `output_truncated`), `fileSizeBytes` (a write or truncate past
/// it fails with `EFBIG` → `file_size_limit`), `workspaceBytes` and `workspaceFiles` (growth past
/// them fails with `ENOSPC` → `workspace_limit`; apparent sizes, so sparse files count in full),
/// `codeBytes`/`inputBytes` checked first (→ ``SandboxError`` `limit_exceeded`). A wasm trap (e.g. `call stack exhausted`) ends the run
/// with outcome `killed` and the trap as `reason`; it never takes the host process down.
public struct WasmBackend: IsolationBackend {
    /// Where runs execute.
    public enum ExecutionMode: Sendable, Equatable {
        /// WasmKit in this process on a dedicated 64 MiB-stack thread (fastest; instances reused).
        case inProcess
        /// A `<executable> wasm-worker …` child process per run, killed at the deadline.
        case worker(executable: String)
    }

    /// How the backend finds its modules and runs them.
    public struct Configuration: Sendable {
        /// Path of `qjs.wasm`; nil = ``QuickJS/locate()`` on first use.
        public var quickJSModule: String?
        /// Directory for per-run workspaces (`<workDirectory>/sbx-…-wasm-XXXXXX`).
        public var workDirectory: String
        public var mode: ExecutionMode
        /// Reuse reset instances of modules that allow it (qjs.wasm): no re-translation per run.
        public var reuseInstances: Bool
        /// Called for every tool call of every run (also logged at `info` through `logger`).
        public var onToolCall: ToolCallHandler?
        public var logger: Logger

        public init(
            quickJSModule: String? = nil, workDirectory: String = NSTemporaryDirectory(), mode: ExecutionMode = .inProcess,
            reuseInstances: Bool = true, onToolCall: ToolCallHandler? = nil,
            logger: Logger = Logger(label: "sandboxer.wasm")
        ) {
            self.quickJSModule = quickJSModule
            self.workDirectory = workDirectory
            self.mode = mode
            self.reuseInstances = reuseInstances
            self.onToolCall = onToolCall
            self.logger = logger
        }
    }

    public let configuration: Configuration
    public var level: IsolationLevel { .wasm }

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    public func run(_ spec: SandboxSpec, _ request: ExecRequest, output: OutputHandler?) async throws -> ExecResult {
        try await execute(spec, request, output: output)
    }

    /// Creates a sandbox whose `/workspace` persists across ``exec(_:_:output:)`` calls.
    public func create(_ spec: SandboxSpec) async throws -> SandboxHandle {
        var spec = spec
        if spec.workspaceDirectory == nil {
            spec.workspaceDirectory = try Workspace.make(in: configuration.workDirectory, id: spec.id).path
        }
        return SandboxHandle(id: spec.id, spec: spec)
    }

    public func exec(_ sandbox: SandboxHandle, _ request: ExecRequest, output: OutputHandler?) async throws -> ExecResult {
        try await execute(sandbox.spec, request, output: output)
    }

    /// Removes the workspace ``create(_:)`` made (a caller-supplied directory is left alone).
    public func destroy(_ sandbox: SandboxHandle) async throws {
        if let dir = sandbox.spec.workspaceDirectory, Workspace.isOurs(dir, in: configuration.workDirectory, id: sandbox.id) {
            try? FileManager.default.removeItem(atPath: dir)
        }
    }

    /// Runs one request and returns the same ``ExecResult`` the container backend does, plus the
    /// tool-call log of the run (also delivered to ``Configuration/onToolCall``).
    public func runWithToolCalls(_ spec: SandboxSpec, _ request: ExecRequest, output: OutputHandler?) async throws
        -> (result: ExecResult, toolCalls: [ToolCallRecord])
    {
        try await runWithToolCalls(spec, request, output: output, live: nil)
    }

    /// What differs when a run is an exec of a long-lived sandbox (``WasmLiveBackend``).
    struct LiveRun: Sendable {
        /// The sandbox's kv store file.
        var kvStore: String
        /// The `invalid_state` message when another exec holds the sandbox's workspace.
        var busyMessage: String
    }

    /// Locks a workspace directory for one run, trying again for up to `patience` while it is
    /// held: the previous exec's descriptor closes with its run, but a child that any thread of
    /// this process forked meanwhile holds a copy (and so the lock) until it execs — a moment,
    /// longer on a loaded machine. A run still going holds it past the patience: `invalid_state`.
    static func lockWorkspace(_ dir: String, patience: Duration) async throws(SandboxError) -> DirectoryFD {
        let deadline = ContinuousClock.now + patience
        while true {
            do {
                return try DirectoryFD.openWorkspace(path: dir)
            } catch where error.code == .invalidState && ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(10))
            }
        }
    }

    func runWithToolCalls(_ spec: SandboxSpec, _ request: ExecRequest, output: OutputHandler?, live: LiveRun?) async throws
        -> (result: ExecResult, toolCalls: [ToolCallRecord])
    {
        let start = ContinuousClock.now
        let limits = spec.profile.limits
        let plan = try WasmPlan(request: request, profile: spec.profile, quickJS: { try self.quickJSPath() })
        let stdin = try StdinLoader.load(request.stdin, limit: limits.inputBytes)
        // One run per host workspace directory, as in the container backend.
        var hostLock: DirectoryFD?
        if let dir = spec.workspaceDirectory {
            do {
                hostLock = try await Self.lockWorkspace(dir, patience: live == nil ? .zero : .milliseconds(500))
            } catch {
                let refusal: SandboxError? = error
                if let live, refusal?.code == .invalidState { throw SandboxError(.invalidState, live.busyMessage) }
                throw error
            }
        }
        defer { hostLock?.close() }
        let workspace = try spec.workspaceDirectory.map { Workspace(path: $0, owned: false) }
            ?? Workspace.make(in: configuration.workDirectory, id: spec.id)
        defer { workspace.remove() }
        let invocation = WasmInvocation(
            sandboxId: spec.id, modulePath: plan.modulePath, arguments: plan.arguments,
            environment: spec.profile.env.merging(request.env) { $1 }, stdin: stdin, workspace: workspace.path,
            timeout: limits.timeout, maxMemoryBytes: Int(clamping: limits.memoryBytes), outputBytes: limits.outputBytes,
            tools: spec.profile.tools, networkAllow: spec.profile.network.allow,
            reuseInstances: configuration.reuseInstances && plan.isJavaScript,
            workspaceLimits: .init(
                workspaceBytes: limits.workspaceBytes, fileSizeBytes: limits.fileSizeBytes, workspaceFiles: limits.workspaceFiles),
            kvStorePath: live?.kvStore)
        let createMs = (ContinuousClock.now - start).milliseconds
        let report: WasmRunReport
        switch configuration.mode {
        case .inProcess:
            report = await WasmRuntime.shared.run(
                invocation, output: output, logger: configuration.logger, onToolCall: configuration.onToolCall)
        case .worker(let executable):
            report = try await WorkerLauncher(executable: executable, logger: configuration.logger)
                .run(invocation, output: output, onToolCall: configuration.onToolCall)
        }
        var result = ResultMapper.map(report, plan: plan, spec: spec)
        result.timings.createMs = createMs
        result.timings.runMs = report.wallMs
        result.timings.teardownMs = (ContinuousClock.now - start).milliseconds - createMs - report.wallMs
        configuration.logger.debug("wasm run", metadata: [
            "sandbox": "\(spec.id)", "outcome": "\(result.outcome.rawValue)", "wall_ms": "\(report.wallMs)",
            "reused_instance": "\(report.reusedInstance)",
        ])
        return (result, report.toolCalls)
    }

    private func execute(_ spec: SandboxSpec, _ request: ExecRequest, output: OutputHandler?) async throws -> ExecResult {
        try await runWithToolCalls(spec, request, output: output).result
    }

    private func quickJSPath() throws(SandboxError) -> String {
        if let path = configuration.quickJSModule {
            guard FileManager.default.isReadableFile(atPath: path) else {
                throw SandboxError(.hostUnsupported, "QuickJS module \(path) is missing; build it with `make wasm`")
            }
            return path
        }
        return try QuickJS.locate()
    }
}
