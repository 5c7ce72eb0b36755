import Foundation
import SandboxCore
import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

/// A sandbox's filesystem state as ONE image layer: its upper directory (what it changed in its
/// root, overlayfs format: whiteouts and opaque directories become `.wh.` members) and its
/// workspace, stored under `workspace/` (the path the sandbox sees). Owners are written as the
/// sandbox saw them (host ids shifted back by the sandbox's id base), so the layer holds image ids
/// and restores into any sandbox's id range. A sandbox on the `host` template has no upper
/// directory: its layer is the workspace alone.
public enum SnapshotLayer {
    /// Where the workspace is stored in a snapshot's layer.
    public static let workspaceDirectory = "workspace"

    /// Writes the layer to the new file `file` (``ImageStore/snapshotStagingFile()``); returns its
    /// descriptor (digest = diff id). Blocks (reads every file): run it on the blocking pool, with
    /// the sandbox frozen.
    public static func write(upper: String?, workspace: String, idBase: UInt32?, to file: String) throws(SandboxError) -> OCIDescriptor {
        try ImageWriter.writeLayer(to: file, { (tar) throws(SandboxError) in
            var links: [String: String] = [:]
            // The upper directory's own `workspace` is only the mount point the tmpfs covers.
            if let upper { try tar.append(directory: upper, skipping: [workspaceDirectory], links: &links) }
            try tar.append(directory: workspace, under: workspaceDirectory, links: &links)
            try tar.finish()
        }, idBase: idBase)
    }

    /// Copies the `workspace/` part of an unpacked snapshot layer (`layer`) into a new sandbox's
    /// empty workspace, owners shifted into the sandbox's id range (`idBase`; nil: as stored).
    /// Holes of sparse files stay holes. Blocks: run it on the blocking pool.
    public static func restoreWorkspace(layer: String, into workspace: String, idBase: UInt32?) throws(SandboxError) {
        let source = layer + "/" + workspaceDirectory
        guard SysFile.exists(source) else { return }
        let src = open(source, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard src >= 0 else { throw Syscall.error("opening \(source)", errno: errno) }
        defer { close(src) }
        let dst = open(workspace, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard dst >= 0 else { throw Syscall.error("opening \(workspace)", errno: errno) }
        defer { close(dst) }
        var links: [UInt64: String] = [:]
        try copyTree(src, dst, root: dst, path: "", idBase: idBase, links: &links)
        var st = stat()
        guard fstat(src, &st) == 0 else { throw Syscall.error("stat \(source)", errno: errno) }
        fchown(dst, shifted(st.st_uid, idBase), shifted(st.st_gid, idBase))
        fchmod(dst, mode_t(st.st_mode & 0o7777))
    }

    static func shifted(_ id: UInt32, _ base: UInt32?) -> UInt32 { base.map { $0 + min(id, 65535) } ?? id }

    /// Copies the tree of `src` into `dst` (`path` below the workspace `root`); `links` maps an
    /// inode with more than one link to the first copy's path, so hard links stay links.
    private static func copyTree(_ src: Int32, _ dst: Int32, root: Int32, path: String, idBase: UInt32?,
                                 links: inout [UInt64: String]) throws(SandboxError) {
        for raw in try DirectoryFD.entries(of: src) {
            let name = String(decoding: raw, as: UTF8.self)
            let here = path.isEmpty ? name : path + "/" + name
            var st = stat()
            guard fstatat(src, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { throw Syscall.error("stat \(here)", errno: errno) }
            let (uid, gid) = (shifted(st.st_uid, idBase), shifted(st.st_gid, idBase))
            let mode = mode_t(st.st_mode & 0o7777)
            var times = [st.st_atim, st.st_mtim]
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                guard mkdirat(dst, name, 0o700) == 0 else { throw Syscall.error("making \(here)", errno: errno) }
                let s = openat(src, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard s >= 0 else { throw Syscall.error("opening \(here)", errno: errno) }
                defer { close(s) }
                let d = openat(dst, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard d >= 0 else { throw Syscall.error("opening the copy of \(here)", errno: errno) }
                defer { close(d) }
                try copyTree(s, d, root: root, path: here, idBase: idBase, links: &links)
                fchown(d, uid, gid)
                fchmod(d, mode)
                futimens(d, &times)
            case S_IFREG:
                if st.st_nlink > 1, let first = links[UInt64(st.st_ino)] {
                    guard linkat(root, first, dst, name, 0) == 0 else { throw Syscall.error("linking \(here) to \(first)", errno: errno) }
                    continue
                }
                if st.st_nlink > 1 { links[UInt64(st.st_ino)] = here }
                let s = openat(src, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
                guard s >= 0 else { throw Syscall.error("opening \(here)", errno: errno) }
                defer { close(s) }
                let d = openat(dst, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
                guard d >= 0 else { throw Syscall.error("creating the copy of \(here)", errno: errno) }
                defer { close(d) }
                do { _ = try SparseCopy.copy(from: s, to: d, size: Int64(st.st_size)) { _ in } } catch {
                    throw SandboxError(.limitExceeded, "restoring \(here) into the new sandbox's workspace: \(error.reason) (the snapshot's workspace is larger than this profile's workspace limit?)")
                }
                fchown(d, uid, gid)
                fchmod(d, mode)
                futimens(d, &times)
            case S_IFLNK:
                var target = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
                let n = readlinkat(src, name, &target, target.count - 1)
                guard n >= 0 else { throw Syscall.error("readlink \(here)", errno: errno) }
                target[n] = 0
                guard symlinkat(target, dst, name) == 0 else { throw Syscall.error("making the symlink \(here)", errno: errno) }
                fchownat(dst, name, uid, gid, AT_SYMLINK_NOFOLLOW)
                utimensat(dst, name, &times, AT_SYMLINK_NOFOLLOW)
            case S_IFIFO:
                guard mknodat(dst, name, S_IFIFO | mode, 0) == 0 else { throw Syscall.error("making the FIFO \(here)", errno: errno) }
                fchownat(dst, name, uid, gid, AT_SYMLINK_NOFOLLOW)
                fchmodat(dst, name, mode, 0)
            default:
                continue  // layers hold no other kinds
            }
        }
    }
}
