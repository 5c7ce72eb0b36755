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
    let layout: RunLayout
    let cgroup: SandboxCgroup
    let template: PreparedTemplate

    /// Creates directory, cgroup and workspace, seeding the workspace from the spec's host directory.
    static func setUp(spec: SandboxSpec, stateDirectory: String, host: CgroupHost) throws(SandboxError) -> SandboxResources {
        let p = spec.profile
        let template = try TemplateRegistry.named(p.template).prepare(uid: p.uid, gid: p.gid, stateDirectory: stateDirectory)
        let layout = RunLayout(stateDirectory: stateDirectory, id: spec.id)
        try layout.create()
        var cgroup = SandboxCgroup(id: spec.id, host: host)
        do {
            try cgroup.create(limits: p.limits)
        } catch {
            SysFile.removeTree(layout.directory)
            throw error
        }
        let r = SandboxResources(spec: spec, layout: layout, cgroup: cgroup, template: template)
        do {
            let ids = IDMapping(spec: spec)
            try Mounts.mountTmpfs(at: layout.workspace, sizeBytes: p.limits.workspaceBytes, uid: ids.host(p.uid), gid: ids.host(p.gid))
            if let dir = spec.workspaceDirectory {
                try FileTree.copyContents(of: dir, into: layout.workspace, uid: ids.host(p.uid), gid: ids.host(p.gid))
            }
        } catch {
            r.tearDown(runtime: nil, syncWorkspace: false)
            throw error
        }
        return r
    }

    /// Writes `/code/<name>` (read-only inside) and returns the directory to bind.
    func writeCode(_ code: [UInt8], fileName: String) throws(SandboxError) -> String {
        try SysFile.makeDirectory(layout.codeDirectory, mode: 0o755)
        guard !fileName.contains("/"), !fileName.isEmpty, fileName != "..", fileName != "." else {
            throw SandboxError(.invalidRequest, "code file name '\(fileName)' must be a plain file name")
        }
        try SysFile.create(layout.codeDirectory + "/" + fileName, code, mode: 0o644)
        return layout.codeDirectory
    }

    /// Copies the workspace back to the spec's host directory (links stay links, never followed).
    func syncWorkspaceOut() throws(SandboxError) {
        guard let dir = spec.workspaceDirectory else { return }
        var st = stat()
        let owner = stat(dir, &st) == 0 ? (st.st_uid, st.st_gid) : (0, 0)
        try FileTree.copyContents(of: layout.workspace, into: dir, uid: owner.0, gid: owner.1)
    }

    /// Kills everything, removes runtime state, cgroups, mounts and the directory.
    func tearDown(runtime: OCIRuntime?, syncWorkspace: Bool) {
        cgroup.killAll()
        if let runtime, runtime.hasState(id: spec.id) {
            // The runtime normally deletes its state itself; this is the crash/detached path.
            _ = try? ChildProcess.runSilently(runtime.deleteArgs(id: spec.id))
        }
        cgroup.remove()
        if syncWorkspace { try? syncWorkspaceOut() }
        for m in Mounts.mountPoints(under: layout.directory) { Mounts.unmount(m) }
        SysFile.removeTree(layout.directory)
    }
}
