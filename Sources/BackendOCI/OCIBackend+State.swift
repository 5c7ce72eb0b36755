import Foundation
import SandboxCore
import SandboxLinux
import Templates

/// Pause, hibernate and wake (issue 19). A pause freezes the sandbox's cgroup (agent included):
/// its processes keep their memory and use no CPU until the thaw. A hibernation freezes it, copies
/// what it wrote (an image template's upper directory and the workspace, both tmpfs) to
/// ``HibernatedFiles`` on disk, then tears the sandbox down (processes, cgroup, tmpfs mounts: its
/// memory is freed). Waking creates the sandbox again — new agent, new processes — with those
/// files copied back in before the overlay is mounted, then removes them from disk.
extension OCIBackend {
    /// Where hibernated sandboxes' files are kept.
    var hibernatedRoot: String { configuration.hibernateDirectory ?? configuration.stateDirectory + "/hibernated" }

    func hibernated(_ id: String) -> HibernatedFiles { HibernatedFiles(directory: hibernatedRoot + "/" + id) }

    public func pause(_ sandbox: SandboxHandle) async throws {
        _ = try liveLayout(sandbox.id)
        let cgroup = SandboxCgroup(id: sandbox.id, host: host)
        try await BlockingPool.shared.run { Result { () throws(SandboxError) in try cgroup.freeze() } }.get()
    }

    public func unpause(_ sandbox: SandboxHandle) async throws {
        _ = try liveLayout(sandbox.id)
        let cgroup = SandboxCgroup(id: sandbox.id, host: host)
        await BlockingPool.shared.run { cgroup.thaw() }
    }

    public func hibernate(_ sandbox: SandboxHandle) async throws {
        let id = sandbox.id
        let layout = try liveLayout(id)
        if sandbox.spec.workspaceDirectory != nil {
            throw SandboxError(.invalidRequest, "sandbox \(id) works on a host directory (its workspace is copied back at its end), so it cannot hibernate; pause it instead")
        }
        let cgroup = SandboxCgroup(id: id, host: host)
        let kept = hibernated(id)
        // Frozen, nothing changes the files while they are copied; a failed copy thaws it again.
        try await BlockingPool.shared.run { Result { () throws(SandboxError) in
            try cgroup.freeze()
            do throws(SandboxError) { try HibernatedFiles.save(layout: layout, to: kept.directory) } catch {
                cgroup.thaw()
                throw error
            }
        } }.get()
        agents.close(id)
        await detachEgress(id)
        let runtimes = knownRuntimes()
        await BlockingPool.shared.run { SandboxResources.tearDown(layout: layout, cgroup: cgroup, runtimes: runtimes) }
        logger.info("sandbox hibernated", metadata: ["id": "\(id)", "files": "\(kept.directory)"])
    }

    public func wake(_ spec: SandboxSpec) async throws -> SandboxHandle {
        let kept = hibernated(spec.id)
        guard SysFile.exists(kept.directory) else {
            throw SandboxError(.sandboxLost, "the kept files of hibernated sandbox \(spec.id) are gone from \(kept.directory); create a new one")
        }
        let handle = try await create(spec, restoring: kept.directory)
        await BlockingPool.shared.run { SysFile.removeTree(kept.directory) }
        return handle
    }

    public func isHibernated(id: String) async -> Bool {
        SysFile.exists(hibernated(id).directory)
    }

    public func diskBytes(id: String) async -> Int64? {
        let kept = hibernated(id)
        let layout = ContainerLayout(stateDirectory: configuration.stateDirectory, id: id)
        return await BlockingPool.shared.run { () -> Int64? in
            if SysFile.exists(kept.directory) { return HibernatedFiles.allocatedBytes(kept.directory) }
            let workspace = HibernatedFiles.usedBytes(mountedAt: layout.workspace)
            let upper = HibernatedFiles.usedBytes(mountedAt: layout.imageRoot + "/rw")
            if workspace == nil && upper == nil { return nil }
            return (workspace ?? 0) + (upper ?? 0)
        }
    }

    /// Removes a hibernated sandbox's kept files (its end, or an orphan's).
    func discardHibernated(_ id: String) async {
        let kept = hibernated(id)
        await BlockingPool.shared.run { SysFile.removeTree(kept.directory) }
    }

    /// Ids whose kept files are on disk.
    func hibernatedIds() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: hibernatedRoot)) ?? []).filter { $0.hasPrefix(SandboxSpec.resourcePrefix) }
    }
}
