import BackendOCI
import Foundation
import SandboxCore
import SandboxLinux
import SandboxManager
import SandboxStore
import SandboxTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A manager over a fresh store and state directory, with the real container backend.
struct ManagerFixture {
    let directory: String
    let store: SQLiteStore
    let manager: SandboxManager
    let backend: OCIBackend
    let tenant: Tenant

    static func make(
        warmPool: [String: Int] = [:], reaperInterval: Duration = .milliseconds(100), healthInterval: Duration = .seconds(60),
        directory: String? = nil
    ) async throws -> ManagerFixture {
        let dir = directory ?? {
            var t = Array("/tmp/sbx-mgr-XXXXXX".utf8CString)
            _ = t.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
            return String(cString: t)
        }()
        let store = try SQLiteStore(directory: dir)
        let config = SandboxManager.Configuration(
            dataDirectory: dir, reaperInterval: reaperInterval, healthInterval: healthInterval, warmPool: warmPool)
        let backend = try OCIBackend(configuration: .init(stateDirectory: config.stateDirectory, hibernateDirectory: dir + "/hibernated"))
        let manager = SandboxManager(store: store, backends: [.container: backend], configuration: config)
        let tenant = try await store.ensureTenant(name: "acme")
        return ManagerFixture(directory: dir, store: store, manager: manager, backend: backend, tenant: tenant)
    }

    /// A short-limit profile for tests.
    static var request: CreateSandboxRequest {
        var p = Profile.default
        p.limits.timeout = .seconds(20)
        return CreateSandboxRequest(profile: .inline(p))
    }

    /// Runs `body` on a fresh fixture and always cleans up afterwards (also when `body` throws).
    static func with(
        warmPool: [String: Int] = [:], healthInterval: Duration = .seconds(60), _ body: (ManagerFixture) async throws -> Void
    ) async throws {
        let f = try await make(warmPool: warmPool, healthInterval: healthInterval)
        do { try await body(f) } catch {
            await f.finish()
            throw error
        }
        await f.finish()
    }

    /// Destroys what is left, stops the manager and removes the directory (only when empty of mounts).
    func finish() async {
        let page = try? await manager.list(SandboxQuery(tenantId: tenant.id, states: [.running, .creating, .paused, .hibernated]))
        for r in page?.items ?? [] { _ = try? await manager.destroy(tenantId: tenant.id, id: r.id, actor: "test") }
        await manager.shutdown()
        for id in await backend.list() { await backend.collect(id: id) }
        try? store.close()
        SysFile.removeTree(directory)
        let state = manager.configuration.stateDirectory
        if Mounts.mountPoints(under: state).isEmpty { SysFile.removeTree(state) }
    }
}

/// Collects streamed output.
final class OutputBox: @unchecked Sendable {
    private let lock = NSLock()
    private var data: [UInt8] = []
    func add(_ b: [UInt8]) { lock.withLock { data += b } }
    var text: String { lock.withLock { String(decoding: data, as: UTF8.self) } }
}
