import Foundation
import SandboxCore
import SandboxLinux
import SandboxStore
import Templates

/// What `POST /v1/sandboxes/{id}/fork` made: one snapshot and the sandboxes restored from it.
public struct ForkResult: Sendable {
    public var snapshot: SnapshotResult
    public var sandboxes: [SandboxRecord]
}

/// Snapshots (a live container sandbox's filesystem saved as an image of the data directory's
/// store), restore (a create from one: ``CreateSandboxRequest/snapshot``) and fork (one snapshot,
/// N sandboxes). Snapshots belong to their tenant: another tenant's is `not_found`.
extension SandboxManager {
    /// The data directory's image store, where snapshots live beside the templates.
    nonisolated var images: ImageStore { ImageStore(dataDirectory: configuration.dataDirectory) }

    /// The most sandboxes one fork makes.
    public static let maxFork = 100

    /// Refuses `"memory": true`: naming why this host cannot checkpoint processes.
    func refuseMemory() async throws {
        let reason = await MemorySnapshots.unavailableReason() ?? "memory snapshots are not implemented in this version"
        throw SandboxError(.invalidState, "memory: process state cannot be saved here: \(reason); leave out \"memory\" to save the filesystem only (processes do not carry over)",
                           field: "memory")
    }

    /// Saves the filesystem of the tenant's running container sandbox `id` (root changes and
    /// workspace) as a snapshot; the sandbox is frozen meanwhile and runs on unchanged.
    public func snapshot(tenantId: String, id: String, memory: Bool = false, actor: String) async throws -> SnapshotResult {
        if memory { try await refuseMemory() }
        let (handle, backend) = try await snapshotSource(tenantId, id)
        guard snapshotting.insert(id).inserted else {
            throw SandboxError(.invalidState, "a snapshot of sandbox \(id) is being taken; try again when it is done", retryAfterSeconds: 1)
        }
        defer { snapshotting.remove(id) }
        let snapshotID = SandboxSpec.newID(prefix: ImageStore.snapshotPrefix)
        let result = try await backend.snapshot(handle, id: snapshotID, tenantId: tenantId)
        trail.record(AuditEvent(sandboxId: id, kind: .sandboxSnapshot, actor: actor, detail: [
            "snapshot": .string(result.id), "digest": .string(result.digest), "size_bytes": .int(result.sizeBytes),
            "paused_ms": .int(Int64(result.pausedMs.rounded())),
        ]))
        return result
    }

    /// A running container sandbox of the tenant and its backend, or the error that says why not.
    func snapshotSource(_ tenantId: String, _ id: String) async throws -> (SandboxHandle, any SnapshotBackend) {
        guard let l = live[id], l.record.tenantId == tenantId else {
            let ended = try await get(tenantId: tenantId, id: id)  // another tenant's or none: not_found
            throw SandboxError(.invalidState, "sandbox \(id) is \(ended.state.rawValue), not running: only a running sandbox can be snapshotted")
        }
        guard l.record.profile.isolation == .container || l.record.profile.isolation == .gvisor else {
            throw SandboxError(.invalidRequest, "sandbox \(id) is a \(l.record.profile.isolation.rawValue) sandbox: snapshots are for container sandboxes")
        }
        guard l.record.state == .running, case .up(let handle) = l.stage else {
            throw SandboxError(.invalidState, "sandbox \(id) is \(l.record.state.rawValue), not running: only a running sandbox can be snapshotted")
        }
        guard let backend = backends[l.record.profile.isolation] as? any SnapshotBackend else {
            throw SandboxError(.invalidRequest, "this server's \(l.record.profile.isolation.rawValue) backend cannot take snapshots")
        }
        return (handle, backend)
    }

    /// Snapshots sandbox `id` once and creates `count` sandboxes from it (its profile), all or none:
    /// past the tenant's quota nothing is made, and a create that fails takes the others (and the
    /// snapshot) with it.
    public func fork(tenantId: String, id: String, count: Int, memory: Bool = false, actor: String) async throws -> ForkResult {
        guard (1...Self.maxFork).contains(count) else {
            throw SandboxError(.invalidRequest, "count: must be from 1 to \(Self.maxFork) (got \(count))", field: "count")
        }
        if memory { try await refuseMemory() }
        _ = try await snapshotSource(tenantId, id)
        let source = try liveSandbox(tenantId, id)
        let quota = try await quota(tenantId)
        let have = live.values.filter { $0.record.tenantId == tenantId }.count + quotaHolds.values.filter { $0.tenantId == tenantId }.count
        if have + count > quota.maxSandboxes {
            throw SandboxError(.quotaExceeded, "a fork of \(count) would take this tenant to \(have + count) live sandboxes, over its quota of \(quota.maxSandboxes) (max_sandboxes); nothing was made — delete some or fork fewer",
                               retryAfterSeconds: 10)
        }
        let snapshot = try await self.snapshot(tenantId: tenantId, id: id, actor: actor)
        var made: [SandboxRecord] = []
        do {
            for _ in 0..<count {
                var request = CreateSandboxRequest(metadata: source.record.metadata)
                request.snapshot = snapshot.id
                made.append(try await create(tenantId: tenantId, request, actor: actor, checkedProfile: source.record.profile))
            }
        } catch {
            for r in made { _ = try? await stop(r.id, reason: "fork of \(id) failed: \((error as? SandboxError)?.message ?? "\(error)")", actor: actor, deleted: true) }
            try? await images.remove(snapshot.id)
            throw error
        }
        trail.record(AuditEvent(sandboxId: id, kind: .sandboxFork, actor: actor, detail: [
            "snapshot": .string(snapshot.id), "count": .int(Int64(count)), "sandboxes": .string(made.map(\.id).joined(separator: ",")),
        ]))
        return ForkResult(snapshot: snapshot, sandboxes: made)
    }

    /// The template a sandbox restored from `snapshot` runs on: the snapshot's image, or `host`
    /// for a snapshot of a `host` sandbox (its workspace alone). Another tenant's is `not_found`.
    func restoredTemplate(tenantId: String, snapshot: String, isolation: IsolationLevel) async throws -> String {
        guard isolation == .container || isolation == .gvisor else {
            throw SandboxError(.invalidRequest, "snapshot: a snapshot restores into a container sandbox, not \(isolation.rawValue)", field: "snapshot")
        }
        let info = try await snapshotInfo(tenantId: tenantId, id: snapshot)
        return info.template == "host" ? "host" : info.id
    }

    /// The tenant's snapshots, oldest first.
    public func snapshots(tenantId: String) async throws -> [SnapshotInfo] {
        let images = self.images
        return try await BlockingPool.shared.run { () -> Result<[SnapshotInfo], SandboxError> in
            Result { () throws(SandboxError) in try images.snapshots(tenantId: tenantId) }
        }.get()
    }

    /// The tenant's snapshot `id` (another tenant's: `not_found`).
    public func snapshotInfo(tenantId: String, id: String) async throws -> SnapshotInfo {
        let images = self.images
        return try await BlockingPool.shared.run { () -> Result<SnapshotInfo, SandboxError> in
            Result { () throws(SandboxError) in try images.snapshot(id, tenantId: tenantId) }
        }.get()
    }

    /// The live sandboxes (any tenant's) whose root is template `name` (by name or by `digest`).
    public func sandboxes(onTemplate name: String, digest: String) -> [String] {
        live.values.filter { $0.record.profile.template == name || $0.record.templateDigest == digest }.map(\.record.id).sorted()
    }

    /// Removes the tenant's snapshot `id` and what of it no other image uses; refused while a
    /// live sandbox runs on it (its layers are that sandbox's root).
    public func removeSnapshot(tenantId: String, id: String, actor: String) async throws {
        let info = try await snapshotInfo(tenantId: tenantId, id: id)
        let users = live.values.filter { $0.record.profile.template == id }.map(\.record.id).sorted()
        guard users.isEmpty else {
            throw SandboxError(.invalidState, "snapshot \(id) is the root of live sandboxes \(users.joined(separator: ", ")); delete them first")
        }
        try await images.remove(id)
        recordTenantEvent(TenantEvent(tenantId: tenantId, sandboxId: info.sandboxId, kind: .snapshotRemove, actor: actor,
                                      detail: ["snapshot": .string(id), "digest": .string(info.digest.text)]))
    }
}
