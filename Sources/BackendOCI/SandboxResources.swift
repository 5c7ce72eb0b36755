import Foundation
import Logging
import SandboxCore
import SandboxLinux
import Templates

#if canImport(Glibc)
import Glibc
#endif

/// The host-side resources of one container sandbox (directory, cgroup with limits, workspace
/// tmpfs) with a set-up that undoes itself on failure and a tear-down that leaves nothing behind.
struct SandboxResources: Sendable {
    let spec: SandboxSpec
    let layout: ContainerLayout
    let cgroup: SandboxCgroup
    let template: PreparedTemplate
    /// The host workspace directory, held open and locked for the sandbox's whole life.
    var hostWorkspace: DirectoryFD?
    /// What was copied in from it.
    var manifest = WorkspaceManifest()
    /// The image template's manifest digest (nil: a built-in template).
    var templateDigest: String?

    /// Creates directory, cgroup and workspace, seeding the workspace from the spec's host directory.
    /// `images` resolves a template that is not built in (nil: only `host`).
    /// `restoring`: a hibernated sandbox's kept filesystem, written back in.
    /// `persistent`: where a persistent sandbox's disk images are (made on its first start).
    static func setUp(spec: SandboxSpec, stateDirectory: String, host: CgroupHost, images: ImageStore? = nil,
                      restoring: HibernatedFiles? = nil, persistent: PersistentDisk? = nil) throws(SandboxError) -> SandboxResources {
        let p = spec.profile
        let builtIn = TemplateRegistry.all.first { $0.name == p.template }
        var lowers: [String] = []
        var digest: String?
        if builtIn == nil {
            guard let images else { _ = try TemplateRegistry.named(p.template); throw SandboxError(.notFound, "unknown template '\(p.template)'") }
            let image = try images.image(p.template)
            digest = image.info.digest.description
            lowers = try images.unpackedLowerDirectories(of: image)
        }
        let shared = try builtIn?.prepare(uid: p.uid, gid: p.gid, stateDirectory: stateDirectory)
        let layout = ContainerLayout(stateDirectory: stateDirectory, id: spec.id)
        try layout.create()
        var cgroup = SandboxCgroup(id: spec.id, host: host)
        do {
            try cgroup.create(limits: p.limits)
        } catch {
            SysFile.removeTree(layout.directory)
            throw error
        }
        let ids = IDMapping(spec: spec)
        var template = shared ?? PreparedTemplate(name: p.template, rootfs: "", mounts: [])
        if shared == nil {
            var seed: ((String) throws(SandboxError) -> Void)?
            if let restoring { seed = { (upper: String) throws(SandboxError) in try restoring.restoreUpper(into: upper) } }
            do {
                try SysFile.makeDirectory(ContainerLayout.imageRootsDirectory(stateDirectory), mode: 0o711)
                try SysFile.makeDirectory(layout.imageRoot, mode: 0o711)
                // The disk's entries: the workspace's own cap plus room for a package manager's files.
                let files = p.limits.workspaceFiles + Int(min(p.limits.diskBytes / 2048, 1 << 24))
                template = try ImageRoot.mount(template: p.template, lowers: lowers, directory: layout.imageRoot, hostBase: ids.hostBase,
                                               writable: p.rootIsWritable, diskBytes: p.limits.diskBytes, diskFiles: files,
                                               workspaceOwner: (ids.host(p.uid), ids.host(p.gid)),
                                               seedUpper: seed,
                                               mountUpper: persistent.map { $0.upperMounter(bytes: p.limits.diskBytes, owner: ids.hostBase ?? 0) })
            } catch {
                tearDown(layout: layout, cgroup: cgroup, runtimes: [])
                throw error
            }
        }
        var r = SandboxResources(spec: spec, layout: layout, cgroup: cgroup, template: template)
        r.templateDigest = digest
        do throws(SandboxError) {
            if let dir = spec.workspaceDirectory {
                r.hostWorkspace = try DirectoryFD.openWorkspace(path: dir)
            }
            // A persistent sandbox's workspace disk that already exists (a resume after hibernation or a
            // restart) holds what it restored from its snapshot and changed since: restored only once.
            var restoredBefore = persistent?.exists ?? false
            if let persistent {
                try PersistentDisk.mount(image: persistent.workspaceImage, at: layout.workspace, bytes: p.limits.workspaceBytes,
                                         files: p.limits.workspaceFiles, uid: ids.host(p.uid), gid: ids.host(p.gid))
            } else if r.sharesDisk {
                // A snapshot's workspace is restored as an overlay of the snapshot's layer, not copied.
                if spec.snapshot != nil, restoring == nil, let top = lowers.first,
                   try ImageRoot.mountRestoredWorkspace(directory: layout.imageRoot, topLower: top, hostBase: ids.hostBase, at: layout.workspace) {
                    restoredBefore = true
                } else {
                    try Mounts.bind(ImageRoot.workspaceDirectory(in: layout.imageRoot), at: layout.workspace)
                }
            } else {
                try Mounts.mountTmpfs(
                    at: layout.workspace, sizeBytes: p.limits.workspaceBytes, maxEntries: p.limits.workspaceFiles,
                    uid: ids.host(p.uid), gid: ids.host(p.gid))
            }
            if let restoring { try restoring.restoreWorkspace(into: layout.workspace) }
            if let snapshot = spec.snapshot, restoring == nil, !restoredBefore {
                guard let images else { throw SandboxError(.unavailable, "this backend has no image store: snapshot \(snapshot) cannot be restored") }
                if let top = try images.unpackedLowerDirectories(snapshot).first {
                    try SnapshotLayer.restoreWorkspace(layer: top, into: layout.workspace, idBase: ids.hostBase)
                }
            }
            if let host = r.hostWorkspace {
                let workspace = try DirectoryFD.open(path: layout.workspace)
                r.manifest = try WorkspaceTransfer.copyIn(
                    from: host, to: workspace, uid: ids.host(p.uid), gid: ids.host(p.gid),
                    limits: .workspace(p.limits, withDeadline: false))
            }
        } catch {
            r.tearDown(runtime: nil, syncWorkspace: false)
            throw error
        }
        return r
    }

    /// Writes `/code/<name>` (read-only inside) and returns the directory to bind.
    func writeCode(_ code: [UInt8], fileName: String) throws(SandboxError) -> String {
        try Self.writeCode(code, fileName: fileName, layout: layout)
    }

    static func writeCode(_ code: [UInt8], fileName: String, layout: ContainerLayout) throws(SandboxError) -> String {
        try SysFile.makeDirectory(layout.codeDirectory, mode: 0o755)
        guard !fileName.contains("/"), !fileName.isEmpty, fileName != "..", fileName != "." else {
            throw SandboxError(.invalidRequest, "code file name '\(fileName)' must be a plain file name")
        }
        try SysFile.create(layout.codeDirectory + "/" + fileName, code, mode: 0o644)
        return layout.codeDirectory
    }

    /// Copies the workspace back to the spec's host directory: only what the sandbox changed,
    /// never over a host change made during the run, within the workspace limits and a deadline.
    func syncWorkspaceOut() -> WorkspaceReport? {
        guard let host = hostWorkspace, host.fd >= 0 else { return nil }
        guard let workspace = try? DirectoryFD.open(path: layout.workspace) else {
            var r = WorkspaceReport()
            r.limitReached = "the sandbox's workspace could not be opened; nothing was copied back"
            return r
        }
        return WorkspaceTransfer.copyBack(
            from: workspace, to: host, manifest: manifest, sync: spec.workspaceSync,
            limits: .workspace(spec.profile.limits, withDeadline: true))
    }

    /// Whether the workspace lives on the writable root's disk (one size for both: `disk`).
    /// (Only an image template's root is ever writable.)
    var sharesDisk: Bool { template.writable }

    /// The limit the sandbox ran into when its workspace (or, with a writable root, its disk) is
    /// full, bytes or entries: the outcome and its reason; nil when there is room.
    func limitReached() -> (Outcome, String)? { Self.limitReached(layout, spec.profile.limits) }

    static func limitReached(_ layout: ContainerLayout, _ limits: Limits) -> (Outcome, String)? {
        var vfs = statvfs()
        guard statvfs(layout.workspace, &vfs) == 0, vfs.f_bavail == 0 || vfs.f_favail == 0 else { return nil }
        if SysFile.exists(ImageRoot.workspaceDirectory(in: layout.imageRoot)) {
            return (.diskLimit, "the disk limit (\(ByteSize.format(limits.diskBytes)): the root's changes and the workspace together) was reached inside the sandbox")
        }
        return (.workspaceLimit, "the workspace limit (\(ByteSize.format(limits.workspaceBytes)), \(limits.workspaceFiles) files) was reached inside the sandbox")
    }

    /// Kills everything, copies the workspace back (when asked), removes runtime state, cgroups,
    /// mounts and the directory, and releases the host workspace.
    @discardableResult
    func tearDown(runtime: OCIRuntime?, syncWorkspace: Bool) -> WorkspaceReport? {
        Self.tearDown(layout: layout, cgroup: cgroup, runtimes: runtime.map { [$0] } ?? [], beforeUnmount: {
            let report = syncWorkspace ? syncWorkspaceOut() : nil
            hostWorkspace?.close()
            return report
        })
    }

    /// The tear-down from its parts (for a sandbox known only by id): kill, runtime state, cgroups,
    /// then `beforeUnmount` (the workspace copy-back), mounts and the directory.
    @discardableResult
    static func tearDown(
        layout: ContainerLayout, cgroup: SandboxCgroup, runtimes: [OCIRuntime], beforeUnmount: () -> WorkspaceReport? = { nil }
    ) -> WorkspaceReport? {
        let nothingLeft = cgroup.killAll()
        for runtime in runtimes where runtime.hasState(id: layout.id) {
            // The runtime normally deletes its state itself; this is the crash/detached path (a
            // live sandbox). With every process gone crun's state is only files: no `crun delete`.
            if nothingLeft && runtime.forgetStopped(id: layout.id) { continue }
            _ = try? ChildProcess.runSilently(runtime.deleteArgs(id: layout.id))
        }
        cgroup.remove()
        let report = beforeUnmount()
        for m in Mounts.mountPoints(under: layout.directory) { Mounts.unmount(m) }
        SysFile.removeTree(layout.directory)
        // An image template's root: the overlay first (its path is the deepest), then its layers and upper tmpfs.
        for m in Mounts.mountPoints(under: layout.imageRoot) { Mounts.unmount(m) }
        SysFile.removeTree(layout.imageRoot)
        return report
    }
}
