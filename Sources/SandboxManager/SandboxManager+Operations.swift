import Foundation
import SandboxCore
import SandboxStore

// TEMPORARY signatures (being implemented): the surface the server and CLI call.
extension SandboxManager {
    /// Reconciles the store with the host (adopt what answers, mark the rest lost, remove orphans),
    /// fills the warm pool, starts the reaper. Call once before serving.
    public func start() async throws -> ReconcileReport { ReconcileReport() }
    /// Stops the reaper and the pool filler; live sandboxes stay running and recorded.
    public func shutdown() async {}

    public func create(tenantId: String, _ request: CreateSandboxRequest, actor: String) async throws -> SandboxRecord {
        throw SandboxError(.hostUnsupported, "not built yet")
    }
    public func get(tenantId: String, id: String) async throws -> SandboxRecord { throw SandboxError(.notFound, "no sandbox \(id)") }
    public func list(_ query: SandboxQuery) async throws -> Page<SandboxRecord> { Page(items: [], nextCursor: nil) }
    /// Destroys a sandbox (its processes killed, host resources removed) and returns its final record.
    public func destroy(tenantId: String, id: String, actor: String) async throws -> SandboxRecord {
        throw SandboxError(.notFound, "no sandbox \(id)")
    }
    /// Sets the TTL to `ttl` from now.
    public func setTimeout(tenantId: String, id: String, ttl: Duration, actor: String) async throws -> SandboxRecord {
        throw SandboxError(.notFound, "no sandbox \(id)")
    }
    /// Runs one process in the sandbox and returns its result (output streamed to `output` meanwhile).
    /// Cancelling the calling task kills the process (outcome `cancelled`).
    public func exec(tenantId: String, id: String, _ request: ExecRequest, actor: String, output: OutputHandler?) async throws -> ExecResult {
        throw SandboxError(.notFound, "no sandbox \(id)")
    }

    public func readFile(tenantId: String, id: String, path: String) async throws -> [UInt8] { throw SandboxError(.notFound, "no sandbox \(id)") }
    public func writeFile(tenantId: String, id: String, path: String, data: [UInt8], mode: UInt32 = 0o644, actor: String) async throws { throw SandboxError(.notFound, "no sandbox \(id)") }
    public func removeFile(tenantId: String, id: String, path: String, recursive: Bool, actor: String) async throws { throw SandboxError(.notFound, "no sandbox \(id)") }
    public func listDirectory(tenantId: String, id: String, path: String) async throws -> [FileEntry] { throw SandboxError(.notFound, "no sandbox \(id)") }
    public func stat(tenantId: String, id: String, path: String) async throws -> FileEntry { throw SandboxError(.notFound, "no sandbox \(id)") }
    public func makeDirectory(tenantId: String, id: String, path: String, parents: Bool, actor: String) async throws { throw SandboxError(.notFound, "no sandbox \(id)") }
    public func move(tenantId: String, id: String, from: String, to: String, actor: String) async throws { throw SandboxError(.notFound, "no sandbox \(id)") }

    public func startProcess(tenantId: String, id: String, _ request: ExecRequest, options: ProcessOptions, actor: String) async throws -> SandboxProcess { throw SandboxError(.notFound, "no sandbox \(id)") }
    public func processes(tenantId: String, id: String) async throws -> [SandboxProcess] { throw SandboxError(.notFound, "no sandbox \(id)") }
    public func connect(tenantId: String, id: String, pid: Int32, output: OutputHandler?) async throws -> ExecResult { throw SandboxError(.notFound, "no sandbox \(id)") }
    public func sendInput(tenantId: String, id: String, pid: Int32, data: [UInt8]) async throws { throw SandboxError(.notFound, "no sandbox \(id)") }
    public func closeInput(tenantId: String, id: String, pid: Int32) async throws { throw SandboxError(.notFound, "no sandbox \(id)") }
    public func signal(tenantId: String, id: String, pid: Int32, signal: Int32) async throws { throw SandboxError(.notFound, "no sandbox \(id)") }
    public func resize(tenantId: String, id: String, pid: Int32, size: TerminalSize) async throws { throw SandboxError(.notFound, "no sandbox \(id)") }

    /// Live events of one tenant's sandboxes (ends when the caller stops iterating).
    public func events(tenantId: String) -> AsyncStream<SandboxEvent> { AsyncStream { $0.finish() } }
    /// Counts for `/metrics`: sandboxes by state, pool size.
    public func gauges() async -> (byState: [SandboxState: Int], poolSize: Int) { ([:], 0) }
}
