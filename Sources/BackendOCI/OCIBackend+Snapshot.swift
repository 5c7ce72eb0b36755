import Foundation
import SandboxCore
import SandboxLinux
import Templates

#if canImport(Glibc)
import Glibc
#endif

/// Snapshots of live container sandboxes: the cgroup freezer stops every process where it stands
/// while the upper directory and the workspace are written as one layer (``SnapshotLayer``), then
/// the sandbox runs on; the image (the template's layers + that layer) is committed after the thaw.
extension OCIBackend: SnapshotBackend {
    public func snapshot(_ sandbox: SandboxHandle, id: String, tenantId: String) async throws -> SnapshotResult {
        guard let images = configuration.images else {
            throw SandboxError(.unavailable, "this server has no image store, so it cannot keep snapshots")
        }
        let layout = try liveLayout(sandbox.id)
        let template = sandbox.spec.profile.template
        let upper: String? = template == "host" ? nil : layout.upperDirectory
        if let upper, !SysFile.exists(upper) {
            throw SandboxError(.invalidState, "sandbox \(sandbox.id) has no upper directory at \(upper) (its root is not an image's overlay)")
        }
        let cgroup = SandboxCgroup(id: sandbox.id, host: host)
        let idBase = IDMapping(spec: sandbox.spec).hostBase
        let file = try images.snapshotStagingFile()
        let (layer, pausedMs) = try await BlockingPool.shared.run { () -> Result<(OCIDescriptor, Double), SandboxError> in
            Result { () throws(SandboxError) -> (OCIDescriptor, Double) in
                let start = ContinuousClock.now
                try cgroup.freeze()
                defer { cgroup.thaw() }
                let layer = try SnapshotLayer.write(upper: upper, workspace: layout.workspace, idBase: idBase, to: file)
                cgroup.thaw()
                let paused = ContinuousClock.now - start
                return (layer, Double(paused.components.attoseconds) / 1e15 + Double(paused.components.seconds) * 1000)
            }
        }.get()
        let info: SnapshotInfo
        do {
            info = try await images.commitSnapshot(id: id, base: template, layerFile: file, layer: layer, tenantId: tenantId, sandboxId: sandbox.id)
        } catch {
            unlink(file)
            throw error
        }
        logger.info("sandbox snapshot", metadata: ["id": "\(sandbox.id)", "snapshot": "\(id)", "digest": "\(info.digest)",
                                                   "layer_bytes": "\(layer.size)", "paused_ms": "\(pausedMs)"])
        return SnapshotResult(id: id, digest: info.digest.text, sizeBytes: layer.size, pausedMs: pausedMs)
    }
}
