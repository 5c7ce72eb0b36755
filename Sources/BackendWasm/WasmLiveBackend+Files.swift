import SandboxCore
import SandboxLinux

/// The files API of live WASM sandboxes (on the sandbox's workspace only, see ``WorkspaceFiles``),
/// and the process calls, which the WASM backend does not have.
extension WasmLiveBackend {
    /// Runs `body` on the sandbox's workspace, off the cooperative pool.
    func withFiles<T: Sendable>(
        _ sandbox: SandboxHandle, _ body: @escaping @Sendable (WorkspaceFiles) throws(SandboxError) -> T
    ) async throws(SandboxError) -> T {
        let layout = self.layout
        let limits = sandbox.spec.profile.limits
        return try await Self.blocking { () throws(SandboxError) in
            try body(WorkspaceFiles(root: try layout.openWorkspace(sandbox.id), limits: limits))
        }
    }

    public func readFile(_ sandbox: SandboxHandle, path: String, limit: Int64) async throws -> [UInt8] {
        let p = try WorkspacePath(path)
        guard limit >= 0 else { throw SandboxError(.invalidRequest, "the read limit must not be negative (got \(limit))") }
        return try await withFiles(sandbox) { (f) throws(SandboxError) in try f.read(p, limit: limit) }
    }

    public func writeFile(_ sandbox: SandboxHandle, path: String, data: [UInt8], mode: UInt32) async throws {
        let p = try WorkspacePath(path)
        try await withFiles(sandbox) { (f) throws(SandboxError) in try f.write(p, data: data, mode: mode) }
    }

    public func removeFile(_ sandbox: SandboxHandle, path: String, recursive: Bool) async throws {
        let p = try WorkspacePath(path)
        try await withFiles(sandbox) { (f) throws(SandboxError) in try f.remove(p, recursive: recursive) }
    }

    public func listDirectory(_ sandbox: SandboxHandle, path: String) async throws -> [FileEntry] {
        let p = try WorkspacePath(path)
        return try await withFiles(sandbox) { (f) throws(SandboxError) in try f.list(p) }
    }

    public func stat(_ sandbox: SandboxHandle, path: String) async throws -> FileEntry {
        let p = try WorkspacePath(path)
        return try await withFiles(sandbox) { (f) throws(SandboxError) in try f.stat(p) }
    }

    public func makeDirectory(_ sandbox: SandboxHandle, path: String, parents: Bool) async throws {
        let p = try WorkspacePath(path)
        try await withFiles(sandbox) { (f) throws(SandboxError) in try f.makeDirectory(p, parents: parents) }
    }

    public func move(_ sandbox: SandboxHandle, from: String, to: String) async throws {
        let source = try WorkspacePath(from)
        let target = try WorkspacePath(to)
        try await withFiles(sandbox) { (f) throws(SandboxError) in try f.move(from: source, to: target) }
    }

    // MARK: processes

    /// The WASM backend runs nothing but the exec in flight.
    static func noProcesses(_ what: String) -> SandboxError {
        SandboxError(.invalidRequest, "isolation wasm has no background processes (\(what)): each exec runs to its end; for background processes, PTYs and signals use a sandbox of isolation container or gvisor")
    }

    public func startProcess(_ sandbox: SandboxHandle, _ request: ExecRequest, options: ProcessOptions) async throws -> SandboxProcess {
        throw Self.noProcesses("start")
    }

    /// Always empty: between execs a WASM sandbox runs nothing.
    public func processes(_ sandbox: SandboxHandle) async throws -> [SandboxProcess] { [] }

    public func connect(_ sandbox: SandboxHandle, pid: Int32, replay: Bool, output: OutputHandler?) async throws -> ExecResult {
        throw Self.noProcesses("connect to pid \(pid)")
    }

    public func sendInput(_ sandbox: SandboxHandle, pid: Int32, data: [UInt8]) async throws {
        throw Self.noProcesses("send input to pid \(pid)")
    }

    public func closeInput(_ sandbox: SandboxHandle, pid: Int32) async throws {
        throw Self.noProcesses("close the input of pid \(pid)")
    }

    public func signal(_ sandbox: SandboxHandle, pid: Int32, signal: Int32) async throws {
        throw Self.noProcesses("signal pid \(pid)")
    }

    public func resize(_ sandbox: SandboxHandle, pid: Int32, size: TerminalSize) async throws {
        throw Self.noProcesses("resize pid \(pid)")
    }
}
