import CSandboxLinux
import Foundation
import SandboxCore

#if canImport(Glibc)
import Glibc
#endif

/// Copies a directory tree in this process, keeping what `cp -a --sparse=always` keeps as root:
/// owners, modes, times, hard links within the tree, holes of sparse files, extended attributes of
/// every namespace (overlayfs's `trusted.overlay.*`, E2B's `user.*` metadata, file capabilities),
/// symlinks (copied, never followed), FIFOs and overlayfs whiteouts (0/0 character devices).
/// Sockets and every other device node are skipped. Every directory is opened relative to its parent with
/// `O_NOFOLLOW`, names stay bytes (a name that is not UTF-8 is copied as it is). Starting no
/// process, it moves a hibernated sandbox's files in a fraction of a `cp` run's time.
/// Blocks (reads every file): run it on the blocking pool.
public enum TreeCopy {
    /// Copies what is in `source` into `target` (made when missing), which takes `source`'s owner,
    /// mode, times and extended attributes. `idBase`: every owner id becomes `idBase + min(id, 65535)`
    /// (a layer's ids moved into a sandbox's range); nil: owners as stored.
    /// A full destination throws `limit_exceeded`, anything else `system`, naming the path.
    public static func copy(_ source: String, into target: String, idBase: UInt32? = nil) throws(SandboxError) {
        BlockingCheck.check("TreeCopy.copy")
        let src = open(source, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard src >= 0 else { throw Syscall.error("opening \(source)", errno: errno) }
        defer { close(src) }
        if mkdir(target, 0o700) != 0 && errno != EEXIST { throw Syscall.error("making \(target)", errno: errno) }
        let dst = open(target, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard dst >= 0 else { throw Syscall.error("opening \(target)", errno: errno) }
        defer { close(dst) }
        var copier = Copier(sourceRoot: Array(source.utf8), targetRoot: Array(target.utf8), targetFD: dst, idBase: idBase)
        try copier.copyContents(src, dst, path: [])
        var st = stat()
        guard fstat(src, &st) == 0 else { throw Syscall.error("stat \(source)", errno: errno) }
        try copier.finish(dst, like: st, source: src, path: [])
    }

    static func c(_ bytes: [UInt8]) -> [CChar] { bytes.map { CChar(bitPattern: $0) } + [0] }

    /// One copy's state: the hard links seen so far and one read buffer for every file.
    private struct Copier {
        let sourceRoot: [UInt8]
        let targetRoot: [UInt8]
        let targetFD: Int32
        let idBase: UInt32?
        /// (device, inode) of a file with more than one link → its copy's path below the target.
        var links: [Pair: [UInt8]] = [:]
        var buffer = [UInt8](repeating: 0, count: 256 << 10)

        struct Pair: Hashable { let dev: UInt64, ino: UInt64 }

        init(sourceRoot: [UInt8], targetRoot: [UInt8], targetFD: Int32, idBase: UInt32?) {
            (self.sourceRoot, self.targetRoot, self.targetFD, self.idBase) = (sourceRoot, targetRoot, targetFD, idBase)
        }

        func owner(_ st: stat) -> (uid_t, gid_t) {
            guard let idBase else { return (st.st_uid, st.st_gid) }
            return (idBase + min(st.st_uid, 65535), idBase + min(st.st_gid, 65535))
        }

        func display(_ path: [UInt8]) -> String { Names.display(sourceRoot + [0x2F] + path) }

        func failure(_ what: String, _ path: [UInt8], _ e: Int32) -> SandboxError {
            if e == ENOSPC || e == EDQUOT {
                return SandboxError(.limitExceeded, "\(what) \(display(path)): no space left where it is copied to (its disk limit?)")
            }
            return Syscall.error("\(what) \(display(path))", errno: e)
        }

        mutating func copyContents(_ src: Int32, _ dst: Int32, path: [UInt8]) throws(SandboxError) {
            for name in try DirectoryFD.entries(of: src) {
                let here = path.isEmpty ? name : path + [0x2F] + name
                try copyEntry(name, src, dst, path: here)
            }
        }

        mutating func copyEntry(_ name: [UInt8], _ src: Int32, _ dst: Int32, path: [UInt8]) throws(SandboxError) {
            let cname = TreeCopy.c(name)
            var st = stat()
            guard fstatat(src, cname, &st, AT_SYMLINK_NOFOLLOW) == 0 else { throw failure("stat", path, errno) }
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                guard mkdirat(dst, cname, 0o700) == 0 || errno == EEXIST else { throw failure("making the copy of", path, errno) }
                let s = openat(src, cname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard s >= 0 else { throw failure("opening", path, errno) }
                defer { close(s) }
                let d = openat(dst, cname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard d >= 0 else { throw failure("opening the copy of", path, errno) }
                defer { close(d) }
                try copyContents(s, d, path: path)
                try finish(d, like: st, source: s, path: path)
            case S_IFREG:
                let key = Pair(dev: UInt64(st.st_dev), ino: UInt64(st.st_ino))
                if st.st_nlink > 1, let first = links[key] {
                    guard linkat(targetFD, TreeCopy.c(first), dst, cname, 0) == 0 else { throw failure("linking", path, errno) }
                    return
                }
                let s = openat(src, cname, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
                guard s >= 0 else { throw failure("opening", path, errno) }
                defer { close(s) }
                let d = openat(dst, cname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
                guard d >= 0 else { throw failure("creating the copy of", path, errno) }
                defer { close(d) }
                do { _ = try SparseCopy.copy(from: s, to: d, size: Int64(st.st_size), buffer: &buffer) { _ in } } catch {
                    throw failure("copying", path, errno == 0 ? EIO : errno)
                }
                try finish(d, like: st, source: s, path: path)
                if st.st_nlink > 1 { links[key] = path }
            case S_IFLNK:
                var target = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
                let n = readlinkat(src, cname, &target, target.count - 1)
                guard n >= 0 else { throw failure("readlink", path, errno) }
                target[n] = 0
                guard symlinkat(target, dst, cname) == 0 else { throw failure("making the symlink", path, errno) }
                try finishNode(dst, cname, like: st, path: path)
            case S_IFCHR where st.st_rdev == 0, S_IFIFO:
                // A 0/0 character device is an overlayfs whiteout; any other device node is skipped
                // (the layer unpacker's rule): a sandbox cannot make one, and a copy never should.
                guard mknodat(dst, cname, st.st_mode, st.st_rdev) == 0 else { throw failure("making the node", path, errno) }
                try finishNode(dst, cname, like: st, path: path)
            default:
                return  // a socket or a device: nothing to copy
            }
        }

        /// Owner, then mode (a chown clears set-id bits), extended attributes, times of an open copy.
        func finish(_ d: Int32, like st: stat, source s: Int32, path: [UInt8]) throws(SandboxError) {
            let (uid, gid) = owner(st)
            guard fchown(d, uid, gid) == 0 else { throw failure("chown of the copy of", path, errno) }
            guard fchmod(d, mode_t(st.st_mode & 0o7777)) == 0 else { throw failure("chmod of the copy of", path, errno) }
            try copyXattrs(path: path, list: { sbx_flistxattr(s, $0, $1) }, get: { sbx_fgetxattr(s, $0, $1, $2) },
                           set: { sbx_fsetxattr(d, $0, $1, $2, 0) })
            var times = [st.st_atim, st.st_mtim]
            futimens(d, &times)
        }

        /// The same for a symlink or node, by name (no descriptor to hold; a symlink has no mode of its own).
        func finishNode(_ dst: Int32, _ cname: [CChar], like st: stat, path: [UInt8]) throws(SandboxError) {
            let (uid, gid) = owner(st)
            guard fchownat(dst, cname, uid, gid, AT_SYMLINK_NOFOLLOW) == 0 else { throw failure("chown of the copy of", path, errno) }
            if (st.st_mode & S_IFMT) != S_IFLNK, fchmodat(dst, cname, mode_t(st.st_mode & 0o7777), 0) != 0 {
                throw failure("chmod of the copy of", path, errno)
            }
            let from = TreeCopy.c(sourceRoot + [0x2F] + path), to = TreeCopy.c(targetRoot + [0x2F] + path)
            try copyXattrs(path: path, list: { sbx_llistxattr(from, $0, $1) }, get: { sbx_lgetxattr(from, $0, $1, $2) },
                           set: { sbx_lsetxattr(to, $0, $1, $2, 0) })
            var times = [st.st_atim, st.st_mtim]
            utimensat(dst, cname, &times, AT_SYMLINK_NOFOLLOW)
        }

        func copyXattrs(path: [UInt8], list: (UnsafeMutablePointer<CChar>?, Int) -> Int,
                        get: (UnsafePointer<CChar>, UnsafeMutableRawPointer?, Int) -> Int,
                        set: (UnsafePointer<CChar>, UnsafeRawPointer?, Int) -> Int32) throws(SandboxError) {
            let size = list(nil, 0)
            guard size > 0 else { return }
            var names = [CChar](repeating: 0, count: size)
            let n = names.withUnsafeMutableBufferPointer { list($0.baseAddress, size) }
            guard n > 0 else { return }
            var start = 0
            while start < n {
                var end = start
                while end < n && names[end] != 0 { end += 1 }
                let failed: Int32? = names.withUnsafeBufferPointer { b -> Int32? in
                    let name = b.baseAddress! + start
                    let length = get(name, nil, 0)
                    guard length >= 0 else { return nil }  // gone meanwhile
                    var value = [UInt8](repeating: 0, count: max(length, 1))
                    let got = value.withUnsafeMutableBytes { get(name, $0.baseAddress, length) }
                    guard got >= 0 else { return nil }
                    return value.withUnsafeBytes { set(name, $0.baseAddress, got) } == 0 ? nil : errno
                }
                if let failed, failed != ENOTSUP { throw failure("copying an extended attribute of", path, failed) }
                start = end + 1
            }
        }
    }
}
