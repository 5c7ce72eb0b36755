import Foundation
import SandboxCore
import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

/// Where a hibernated container sandbox keeps its filesystem while nothing of it runs:
/// `<hibernated>/<id>/upper` (an image template's upper directory, overlay format: whiteouts,
/// opaque-directory xattrs) and `<hibernated>/<id>/workspace`, both copied in this process
/// (``TreeCopy``: owners, modes, times, xattrs, holes, hard links, whiteouts). Made under
/// `.<id>.new` and renamed, so a directory under its final name is complete.
struct HibernatedFiles: Sendable {
    let directory: String
    var upper: String { directory + "/upper" }
    var workspace: String { directory + "/workspace" }

    /// Copies a live sandbox's written files (its processes frozen) to `directory`.
    static func save(layout: ContainerLayout, to directory: String) throws(SandboxError) {
        let parent = (directory as NSString).deletingLastPathComponent
        try SysFile.makeDirectory(parent, mode: 0o700)
        let staging = parent + "/." + layout.id + ".new"
        SysFile.removeTree(staging)
        try SysFile.makeDirectory(staging, mode: 0o700)
        let kept = HibernatedFiles(directory: staging)
        do {
            try TreeCopy.copy(layout.workspace, into: kept.workspace)
            if SysFile.exists(layout.upperDirectory) { try TreeCopy.copy(layout.upperDirectory, into: kept.upper) }
        } catch {
            SysFile.removeTree(staging)
            throw error
        }
        SysFile.removeTree(directory)
        guard rename(staging, directory) == 0 else {
            let e = errno
            SysFile.removeTree(staging)
            throw SandboxError(.system, "keeping the files of sandbox \(layout.id) at \(directory): \(String(cString: strerror(e)))")
        }
    }

    /// Bytes the tree under `path` takes on disk (allocated blocks, each hard-linked inode once).
    static func allocatedBytes(_ path: String) -> Int64 {
        var total: Int64 = 0
        var seen = Set<UInt64>()
        var stack = [path]
        while let dir = stack.popLast() {
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { continue }
            for name in names {
                let p = dir + "/" + name
                var st = stat()
                guard lstat(p, &st) == 0 else { continue }
                if (st.st_mode & S_IFMT) == S_IFDIR { stack.append(p) }
                if st.st_nlink > 1, !seen.insert(UInt64(st.st_ino)).inserted { continue }
                total += Int64(st.st_blocks) * 512
            }
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
