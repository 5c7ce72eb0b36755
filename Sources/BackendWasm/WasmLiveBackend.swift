import Foundation
import Logging
import SandboxCore
import SandboxLinux

/// Long-lived sandboxes of the WASM backend: a stateless driver keyed by sandbox id.
///
/// Each sandbox is a directory `<root>/<id>/` (see ``WasmSandboxLayout``) holding `workspace/` —
/// the guest's `/workspace`, which lives on from exec to exec — and the kv tools' store, which
/// persists across the execs of that sandbox (and only that sandbox). A WASM sandbox has no
/// processes between execs, so its whole state is on disk: ``list()`` is the directories present,
/// ``adopt(_:)`` takes back any that is intact after a restart, ``collect(id:)`` and
/// ``destroy(_:)`` remove the directory.
///
/// Execs run through ``WasmBackend`` (in this process or in a `wasm-worker` child per exec, as
/// ``Configuration/mode`` says) with the profile's per-exec limits; one exec at a time per sandbox
/// (another is refused with `invalid_state`). The files API works on the workspace directory only
/// (``WorkspaceFiles``). There are no background processes: those calls are refused.
public struct WasmLiveBackend: LiveSandboxBackend {
    /// Where sandboxes live and how execs run.
    public struct Configuration: Sendable {
        /// The directory holding one directory per sandbox (created 0700), e.g. `<data>/state/wasm`.
        public var root: String
        /// In this process, or a supervised `wasm-worker` process per exec (a WasmKit crash then
        /// cannot take the caller down).
        public var mode: WasmBackend.ExecutionMode
        /// Path of `qjs.wasm`; nil = ``QuickJS/locate()``.
        public var quickJSModule: String?
        /// Reuse reset instances of modules that allow it (in-process mode).
        public var reuseInstances: Bool
        /// Called for every tool call of every exec.
        public var onToolCall: ToolCallHandler?
        public var logger: Logger

        public init(
            root: String, mode: WasmBackend.ExecutionMode = .inProcess, quickJSModule: String? = nil, reuseInstances: Bool = true,
            onToolCall: ToolCallHandler? = nil, logger: Logger = Logger(label: "sandboxer.wasm.live")
        ) {
            self.root = root
            self.mode = mode
            self.quickJSModule = quickJSModule
            self.reuseInstances = reuseInstances
            self.onToolCall = onToolCall
            self.logger = logger
        }
    }

    public let configuration: Configuration
    let layout: WasmSandboxLayout
    /// The engine execs and one-shot runs go through (its temp workspaces are for one-shot runs only).
    let engine: WasmBackend

    public var level: IsolationLevel { .wasm }

    public init(configuration: Configuration) {
        self.configuration = configuration
        layout = WasmSandboxLayout(root: configuration.root)
        engine = WasmBackend(configuration: .init(
            quickJSModule: configuration.quickJSModule, mode: configuration.mode, reuseInstances: configuration.reuseInstances,
            onToolCall: configuration.onToolCall, logger: configuration.logger))
    }

    /// One-shot: a fresh temporary workspace and a store that lives as long as the run.
    public func run(_ spec: SandboxSpec, _ request: ExecRequest, output: OutputHandler?) async throws -> ExecResult {
        try await engine.run(spec, request, output: output)
    }

    /// Creates `<root>/<id>/workspace/`. A live WASM sandbox keeps its own workspace, so a
    /// `workspaceDirectory` in the spec is refused (upload files with ``writeFile(_:path:data:mode:)``).
    public func create(_ spec: SandboxSpec) async throws -> SandboxHandle {
        guard spec.workspaceDirectory == nil else {
            throw SandboxError(.invalidRequest, "a long-lived WASM sandbox keeps its own workspace; create it without a workspace directory and upload files with the files API")
        }
        try spec.profile.limits.validate()
        let layout = self.layout
        try await Self.blocking { () throws(SandboxError) in try layout.create(spec.id) }
        configuration.logger.info("wasm sandbox created", metadata: ["sandbox": "\(spec.id)", "root": "\(layout.root)"])
        return handle(spec)
    }

    /// Takes back a sandbox whose directory is intact (a WASM sandbox's whole state is on disk).
    public func adopt(_ spec: SandboxSpec) async throws -> SandboxHandle {
        try WasmSandboxLayout.check(id: spec.id)
        let layout = self.layout
        guard await BlockingPool.shared.run({ layout.isIntact(spec.id) }) else {
            if FileManager.default.fileExists(atPath: layout.directory(spec.id)) {
                throw SandboxError(.sandboxLost, "WASM sandbox \(spec.id) cannot be adopted: \(layout.directory(spec.id)) lacks its workspace directory (a removal was cut short?); collect it")
            }
            throw SandboxError(.notFound, "WASM sandbox \(spec.id) does not exist under \(layout.root); it cannot be adopted")
        }
        configuration.logger.info("wasm sandbox adopted", metadata: ["sandbox": "\(spec.id)"])
        return handle(spec)
    }

    /// Gone only on evidence: the sandbox's workspace directory no longer exists.
    public func isGone(id: String) async -> Bool {
        SysFile.isMissing(layout.workspace(id))
    }

    /// Runs one exec with the sandbox's workspace and kv store, the profile's per-exec limits.
    public func exec(_ sandbox: SandboxHandle, _ request: ExecRequest, output: OutputHandler?) async throws -> ExecResult {
        let layout = self.layout
        try WasmSandboxLayout.check(id: sandbox.id)
        _ = try await Self.blocking { () throws(SandboxError) in try layout.openWorkspace(sandbox.id) }
        var spec = handle(sandbox.spec).spec
        spec.id = sandbox.id
        spec.workspaceDirectory = layout.workspace(sandbox.id)
        let live = WasmBackend.LiveRun(
            kvStore: layout.kvStore(sandbox.id),
            busyMessage: "WASM sandbox \(sandbox.id) is running another exec (one at a time per sandbox); wait for it to finish, then retry")
        return try await engine.runWithToolCalls(spec, request, output: output, live: live).result
    }

    /// Removes the sandbox's directory: workspace, kv store, everything.
    public func destroy(_ sandbox: SandboxHandle) async throws {
        let layout = self.layout
        try WasmSandboxLayout.check(id: sandbox.id)
        try await Self.blocking { () throws(SandboxError) in try layout.remove(sandbox.id) }
        configuration.logger.info("wasm sandbox destroyed", metadata: ["sandbox": "\(sandbox.id)"])
    }

    /// The ids of the sandbox directories under the root.
    public func list() async -> [String] {
        let layout = self.layout
        return await BlockingPool.shared.run { layout.ids() }
    }

    /// Removes whatever is left of a sandbox (its directory); failures are logged.
    public func collect(id: String) async {
        let layout = self.layout
        do {
            try WasmSandboxLayout.check(id: id)
            try await Self.blocking { () throws(SandboxError) in try layout.remove(id) }
            configuration.logger.info("wasm sandbox collected", metadata: ["sandbox": "\(id)"])
        } catch {
            configuration.logger.error("wasm sandbox not collected", metadata: ["sandbox": "\(id)", "error": "\(error)"])
        }
    }

    /// The handle of a sandbox of this backend: its spec names the workspace directory.
    func handle(_ spec: SandboxSpec) -> SandboxHandle {
        var spec = spec
        spec.workspaceDirectory = layout.workspace(spec.id)
        return SandboxHandle(id: spec.id, spec: spec)
    }

    /// Runs blocking file work on the blocking pool (``BlockingPool``), never on the cooperative pool.
    static func blocking<T: Sendable>(_ body: @escaping @Sendable () throws(SandboxError) -> T) async throws(SandboxError) -> T {
        let result = await BlockingPool.shared.run { Result<T, SandboxError>(catching: body) }
        return try result.get()
    }
}
