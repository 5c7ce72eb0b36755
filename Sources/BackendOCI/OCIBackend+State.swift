import Foundation
import SandboxCore
import SandboxLinux
import Templates

/// Pause, hibernate and wake (issue 19). A pause freezes the sandbox's cgroup (agent included):
/// its processes keep their memory and use no CPU until the thaw. A hibernation freezes it, copies
/// what it wrote (an image template's upper directory and the workspace, both tmpfs) into one
/// file on disk (``HibernatedFiles``), then tears the sandbox down (processes, cgroup, tmpfs
/// mounts: its memory is freed). Waking creates the sandbox again — new agent, new processes —
/// with those files written back in before the overlay is mounted, then removes the file.
extension OCIBackend {
    /// Where hibernated sandboxes' files are kept.
    var hibernatedRoot: String { configuration.hibernateDirectory ?? configuration.stateDirectory + "/hibernated" }

    func hibernated(_ id: String) -> HibernatedFiles { HibernatedFiles(path: hibernatedRoot + "/" + id) }

    /// Where persistent sandboxes' disk images are.
    var persistentRoot: String { configuration.persistentDirectory ?? configuration.stateDirectory + "/persistent" }

    func persistentDisk(_ id: String) -> PersistentDisk { PersistentDisk(directory: persistentRoot + "/" + id) }

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
        // A persistent sandbox's files are on its disk already: nothing to copy.
        let copy = sandbox.spec.profile.persistence != .persistent
        // Frozen, nothing changes the files while they are copied; a failed copy thaws it again
        // (unless it was paused before: then it stays paused).
        try await BlockingPool.shared.run { Result { () throws(SandboxError) in
            let wasPaused = cgroup.isFrozen
            try cgroup.freeze()
            do throws(SandboxError) { if copy { try HibernatedFiles.save(layout: layout, to: kept.path) } } catch {
                if !wasPaused { cgroup.thaw() }
                throw error
            }
        } }.get()
        agents.close(id)
        await detachEgress(id)
        let runtimes = knownRuntimes()
        await BlockingPool.shared.run { SandboxResources.tearDown(layout: layout, cgroup: cgroup, runtimes: runtimes) }
        logger.info("sandbox hibernated", metadata: ["id": "\(id)", "files": "\(kept.path)"])
    }

    public func wake(_ spec: SandboxSpec) async throws -> SandboxHandle {
        if spec.profile.persistence == .persistent {
            guard persistentDisk(spec.id).exists else {
                throw SandboxError(.sandboxLost, "the disk of persistent sandbox \(spec.id) is gone from \(persistentDisk(spec.id).directory); create a new one")
            }
            return try await create(spec, restoring: nil)
        }
        let kept = hibernated(spec.id)
        guard kept.exists else {
            throw SandboxError(.sandboxLost, "the kept files of hibernated sandbox \(spec.id) are gone from \(kept.path); create a new one")
        }
        let handle = try await create(spec, restoring: kept)
        await BlockingPool.shared.run { SysFile.removeTree(kept.path) }
        return handle
    }

    public func isHibernated(id: String) async -> Bool {
        hibernated(id).exists || persistentDisk(id).exists
    }

    /// A persistent sandbox whose processes are gone (a host reboot, a crash): everything but its
    /// disk is removed, and it can wake on that.
    public func keepFiles(id: String) async -> Bool {
        guard persistentDisk(id).exists else { return false }
        let layout = ContainerLayout(stateDirectory: configuration.stateDirectory, id: id)
        let cgroup = SandboxCgroup(id: id, host: host)
        let runtimes = knownRuntimes()
        agents.close(id)
        await detachEgress(id)
        await BlockingPool.shared.run { SandboxResources.tearDown(layout: layout, cgroup: cgroup, runtimes: runtimes) }
        return true
    }

    public func diskBytes(id: String) async -> Int64? {
        let kept = hibernated(id), disk = persistentDisk(id)
        let layout = ContainerLayout(stateDirectory: configuration.stateDirectory, id: id)
        return await BlockingPool.shared.run { () -> Int64? in
            if kept.exists { return kept.allocatedBytes }
            if disk.exists {
                // Mounted: what the sandbox wrote; not: what its images take on disk.
                guard SysFile.exists(layout.directory) else { return disk.allocatedBytes }
                return HibernatedFiles.allocatedBytes(layout.workspace) + HibernatedFiles.allocatedBytes(layout.upperDirectory)
            }
            let workspace = HibernatedFiles.usedBytes(mountedAt: layout.workspace)
            let upper = HibernatedFiles.usedBytes(mountedAt: layout.imageRoot + "/rw")
            if workspace == nil && upper == nil { return nil }
            return (workspace ?? 0) + (upper ?? 0)
        }
    }

    /// Removes a hibernated sandbox's kept files (its end, or an orphan's), also what a hibernation
    /// that crashed before its rename left.
    func discardHibernated(_ id: String) async {
        let kept = hibernated(id), disk = persistentDisk(id), staging = HibernatedFiles.stagingPath(root: hibernatedRoot, id: id)
        await BlockingPool.shared.run {
            SysFile.removeTree(staging)
            SysFile.removeTree(kept.path)
            SysFile.removeTree(disk.directory)
        }
    }

    /// Ids whose kept files (hibernated or persistent) are on disk.
    func hibernatedIds() -> [String] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: hibernatedRoot)) ?? [])
            + ((try? FileManager.default.contentsOfDirectory(atPath: persistentRoot)) ?? [])
        return names.filter { $0.hasPrefix(SandboxSpec.resourcePrefix) }
    }
}
