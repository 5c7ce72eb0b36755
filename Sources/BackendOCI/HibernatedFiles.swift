import Foundation
import SandboxCore
import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

/// Where a hibernated container sandbox keeps its filesystem while nothing of it runs: one
/// ``TreeArchive`` file at `<hibernated>/<id>` with the sections `upper` (an image template's
/// upper directory, overlay format: whiteouts, opaque-directory xattrs) and `workspace` (owners,
/// modes, times, xattrs, holes, hard links kept). Written as `.<id>.new` and renamed, so a file
/// under its final name is complete. Versions before the archive kept a directory with `upper/`
/// and `workspace/`; such a sandbox still wakes from it.
struct HibernatedFiles: Sendable {
    let path: String

    static let upperSection = "upper", workspaceSection = "workspace"

    var exists: Bool { SysFile.exists(path) }

    /// An older version's kept directory (`upper/`, `workspace/`) instead of an archive.
    var isDirectory: Bool {
        var st = stat()
        return lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// Where a hibernation writes the file before renaming it into place.
    static func stagingPath(root: String, id: String) -> String { root + "/." + id + ".new" }

    /// Writes a live sandbox's files (its processes frozen) to `path`.
    static func save(layout: ContainerLayout, to path: String) throws(SandboxError) {
        let parent = (path as NSString).deletingLastPathComponent
        try SysFile.makeDirectory(parent, mode: 0o700)
        let staging = stagingPath(root: parent, id: layout.id)
        SysFile.removeTree(staging)
        var sections = [(name: workspaceSection, directory: layout.workspace)]
        if SysFile.exists(layout.upperDirectory) { sections.append((upperSection, layout.upperDirectory)) }
        do { try TreeArchive.pack(sections, to: staging) } catch {
            SysFile.removeTree(staging)
            throw error
        }
        SysFile.removeTree(path)
        guard rename(staging, path) == 0 else {
            let e = errno
            SysFile.removeTree(staging)
            throw SandboxError(.system, "keeping the files of sandbox \(layout.id) at \(path): \(String(cString: strerror(e)))")
        }
    }

    /// Writes the kept upper directory into `target` (nothing when the sandbox had none).
    func restoreUpper(into target: String) throws(SandboxError) {
        if isDirectory {
            if SysFile.exists(path + "/upper") { try TreeCopy.copy(path + "/upper", into: target) }
        } else {
            try TreeArchive.unpack(section: Self.upperSection, from: path, into: target)
        }
    }

    /// Writes the kept workspace into `target`.
    func restoreWorkspace(into target: String) throws(SandboxError) {
        if isDirectory {
            try TreeCopy.copy(path + "/workspace", into: target)
        } else if try !TreeArchive.unpack(section: Self.workspaceSection, from: path, into: target) {
            throw SandboxError(.sandboxLost, "\(path) keeps no workspace; create a new sandbox")
        }
    }

    /// Bytes the kept files take on disk.
    var allocatedBytes: Int64 { Self.allocatedBytes(path) }

    /// Bytes the tree (or file) at `path` takes on disk (allocated blocks, each hard-linked inode
    /// once), walked by descriptor (``DirectoryTree``): a sandbox's names and depth are its own.
    static func allocatedBytes(_ path: String) -> Int64 {
        var top = stat()
        guard lstat(path, &top) == 0 else { return 0 }
        guard (top.st_mode & S_IFMT) == S_IFDIR, let dir = try? DirectoryFD.open(path: path) else { return Int64(top.st_blocks) * 512 }
        var total: Int64 = 0
        var seen = Set<UInt64>()
        try? DirectoryTree.walk(dir) { _, _, st in
            if st.st_nlink <= 1 || (st.st_mode & S_IFMT) == S_IFDIR || seen.insert(UInt64(st.st_ino)).inserted {
                total += Int64(st.st_blocks) * 512
            }
            return true
        }
        return total
    }

    /// Bytes in use on the filesystem mounted at `path` (a tmpfs of the sandbox's own); nil when not mounted.
    static func usedBytes(mountedAt path: String) -> Int64? {
        var st = stat(), up = stat()
        guard lstat(path, &st) == 0, lstat(path + "/..", &up) == 0, st.st_dev != up.st_dev else { return nil }
        var vfs = statvfs()
        guard statvfs(path, &vfs) == 0 else { return nil }
        return Int64(vfs.f_blocks - vfs.f_bfree) * Int64(vfs.f_frsize)
    }
}
