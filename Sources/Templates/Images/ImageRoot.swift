import Foundation
import SandboxCore
import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

/// The root filesystem of one sandbox made from an image template: the image's unpacked layers as
/// overlayfs lower directories (idmapped into the sandbox's id range, read-only), and an upper
/// directory on a tmpfs of its own, the sandbox's disk: with a writable root it also holds the
/// workspace (``workspaceDirectory(in:)``, bound at `/workspace`), so the root's changes and the
/// workspace share one size limit (`resources.disk`).
/// Everything is mounted below the sandbox's directory, so its tear-down (which unmounts whatever
/// is mounted there, deepest path first) removes it; the paths are chosen so the overlay goes
/// before its layers.
public enum ImageRoot {
    /// The sandbox's writable upper directory (what it changed in its root), below its root directory.
    public static func upperDirectory(in directory: String) -> String { directory + "/rw/upper" }
    /// The workspace's directory on a writable root's disk, below its root directory.
    public static func workspaceDirectory(in directory: String) -> String { directory + "/rw/workspace" }
    /// The tmpfs holding the upper directory (and, with a writable root, the workspace).
    public static func diskDirectory(in directory: String) -> String { directory + "/rw" }
    /// The merged root the sandbox sees, below its root directory.
    public static func mergedDirectory(in directory: String) -> String { directory + "/rootfs-overlay" }

    /// Mounts the root for a sandbox whose directory is `directory`; returns the template to bundle.
    /// `hostBase` is the host id of the sandbox's root (nil: no user namespace, ids as stored).
    /// A writable root's disk is `diskBytes` with room for `diskFiles` entries and holds the
    /// workspace directory (owned by `workspaceOwner`); a read-only root's upper directory only
    /// gets the mount points the runtime needs. `seedUpper` fills the upper directory (a hibernated
    /// sandbox's, given its path) before the overlay is mounted on it.
    public static func mount(template name: String, lowers: [String], directory: String, hostBase: UInt32?,
                             writable: Bool, diskBytes: Int64, diskFiles: Int, workspaceOwner: (uid: UInt32, gid: UInt32),
                             seedUpper: ((String) throws(SandboxError) -> Void)? = nil,
                             mountUpper: (@Sendable (String) throws -> Void)? = nil) throws(SandboxError) -> PreparedTemplate {
        let rw = diskDirectory(in: directory), merged = mergedDirectory(in: directory)
        let root = hostBase ?? 0
        // `mountUpper`: something other than a tmpfs holds the upper directory (a persistent
        // sandbox's disk image; its workspace has a disk of its own).
        if let mountUpper {
            do { try mountUpper(rw) } catch {
                throw (error as? SandboxError) ?? SandboxError(.setupFailed, "mounting the upper directory of template \(name): \(error)")
            }
        } else {
            try Mounts.mountTmpfs(at: rw, sizeBytes: writable ? diskBytes : 1 << 20, maxEntries: writable ? diskFiles : 1024, uid: root, gid: root)
            if writable {
                let workspace = workspaceDirectory(in: directory)
                try SysFile.makeDirectory(workspace)
                chown(workspace, workspaceOwner.uid, workspaceOwner.gid)
            }
        }
        try SysFile.makeDirectory(rw + "/upper")
        try SysFile.makeDirectory(rw + "/work")
        chown(rw + "/upper", root, root)
        chown(rw + "/work", root, root)
        // A hibernated sandbox's upper directory, back in place before the overlay is mounted on it.
        if let seedUpper { try seedUpper(rw + "/upper") }
        var mapped = lowers
        if let hostBase {
            let userns = try IDMappedMount.userNamespace(hostBase: hostBase, size: 65536)
            defer { close(userns) }
            mapped = []
            for (i, lower) in lowers.enumerated() {
                let target = "\(directory)/lower/\(i)"
                try SysFile.makeDirectory(target)
                try IDMappedMount.mount(lower, at: target, userNamespace: userns)
                mapped.append(target)
            }
        }
        try SysFile.makeDirectory(merged)
        let options = "lowerdir=\(mapped.joined(separator: ":")),upperdir=\(rw)/upper,workdir=\(rw)/work"
        guard Glibc.mount("overlay", merged, "overlay", UInt(MS_NOSUID | MS_NODEV), options) == 0 else {
            throw SandboxError(.setupFailed, "mounting the overlay root of template \(name): \(String(cString: strerror(errno)))")
        }
        // The mount points every sandbox uses, made in the upper directory when the image lacks them.
        for point in HostTemplate.mountPoints where !FileManager.default.fileExists(atPath: merged + "/" + point) {
            try SysFile.makeDirectory(merged + "/" + point)
        }
        for file in ["etc/hosts", "etc/hostname"] where !FileManager.default.fileExists(atPath: merged + "/" + file) {
            try SysFile.create(merged + "/" + file, [])
        }
        // Empty whatever the image says (mmdebstrap leaves the build host's): only a sandbox with a
        // network gets a resolver, the egress proxy's, bound over this file.
        unlink(merged + "/etc/resolv.conf")
        try SysFile.create(merged + "/etc/resolv.conf", [], mode: 0o644)
        chown(merged + "/etc/resolv.conf", root, root)
        chmod(merged + "/tmp", 0o1777)
        chmod(merged + "/var/tmp", 0o1777)
        return PreparedTemplate(name: name, rootfs: merged, mounts: [], writable: writable)
    }

    /// Mounts a restored sandbox's workspace at `target` without copying it: an overlay whose lower
    /// directory is the `workspace/` of the image's top layer (the snapshot's layer, the one
    /// ``mount(template:lowers:directory:hostBase:writable:diskBytes:diskFiles:workspaceOwner:seedUpper:mountUpper:)``
    /// mounted first, idmapped when `hostBase` is set) and whose upper directory is the workspace
    /// directory on the sandbox's disk: what the sandbox changes is copied up and counts against
    /// `disk`, what it only reads stays shared with the snapshot. False (nothing mounted) when the
    /// layer has no workspace.
    public static func mountRestoredWorkspace(directory: String, topLower: String, hostBase: UInt32?, at target: String) throws(SandboxError) -> Bool {
        let lower = (hostBase == nil ? topLower : "\(directory)/lower/0") + "/" + SnapshotLayer.workspaceDirectory
        var st = stat()
        guard lstat(lower, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else { return false }
        let upper = workspaceDirectory(in: directory), work = diskDirectory(in: directory) + "/workspace-work"
        try SysFile.makeDirectory(work)
        // The merged root directory takes the upper's owner and mode: the snapshot's, as a copy would.
        chown(upper, st.st_uid, st.st_gid)
        chmod(upper, st.st_mode & 0o7777)
        try SysFile.makeDirectory(target)
        let options = "lowerdir=\(lower),upperdir=\(upper),workdir=\(work)"
        guard Glibc.mount("overlay", target, "overlay", UInt(MS_NOSUID | MS_NODEV), options) == 0 else {
            throw SandboxError(.setupFailed, "mounting the restored workspace at \(target): \(String(cString: strerror(errno)))")
        }
        return true
    }
}
