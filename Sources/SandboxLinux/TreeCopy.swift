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
/// process, it moves a sandbox's files in a fraction of a `cp` run's time.
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
        try into(target, idBase: idBase) { (sink: inout DirectorySink) throws(SandboxError) in
            var walk = TreeWalk(sourceRoot: source)
            try walk.walk(root: src, into: &sink)
        }
    }

    /// Makes `target` when missing and hands a sink writing into it to `fill`.
    static func into(_ target: String, idBase: UInt32?, _ fill: (inout DirectorySink) throws(SandboxError) -> Void) throws(SandboxError) {
        if mkdir(target, 0o700) != 0 && errno != EEXIST { throw Syscall.error("making \(target)", errno: errno) }
        let dst = open(target, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard dst >= 0 else { throw Syscall.error("opening \(target)", errno: errno) }
        defer { close(dst) }
        var sink = DirectorySink(targetRoot: Array(target.utf8), rootFD: dst, idBase: idBase)
        defer { sink.closeAll() }
        try fill(&sink)
    }

    static func c(_ bytes: [UInt8]) -> [CChar] { bytes.map { CChar(bitPattern: $0) } + [0] }
}

/// Writes a walked tree below a directory: each entry made relative to its parent's descriptor,
/// then given its owner (shifted by `idBase` when set), mode (after the chown, which clears
/// set-id bits), extended attributes and times.
struct DirectorySink: TreeSink {
    let targetRoot: [UInt8]
    let idBase: UInt32?
    /// Open directories from the root down, with their paths below the root.
    private var stack: [(fd: Int32, path: [UInt8])]
    /// Paths below the root of the linkable files written so far.
    private var linkable: [[UInt8]] = []
    private let rootFD: Int32

    init(targetRoot: [UInt8], rootFD: Int32, idBase: UInt32?) {
        (self.targetRoot, self.rootFD, self.idBase) = (targetRoot, rootFD, idBase)
        stack = [(rootFD, [])]
    }

    /// Closes what a failed write left open (never the root, which the caller owns).
    mutating func closeAll() {
        while let top = stack.popLast(), top.fd != rootFD { close(top.fd) }
    }

    private var top: (fd: Int32, path: [UInt8]) { stack[stack.count - 1] }

    private func path(_ name: [UInt8]) -> [UInt8] { top.path.isEmpty ? name : top.path + [0x2F] + name }

    private func failure(_ what: String, _ path: [UInt8], _ e: Int32) -> SandboxError {
        let shown = Names.display(path.isEmpty ? targetRoot : targetRoot + [0x2F] + path)
        if e == ENOSPC || e == EDQUOT { return SandboxError(.limitExceeded, "\(what) \(shown): no space left (its disk limit?)") }
        return Syscall.error("\(what) \(shown)", errno: e)
    }

    private func owner(_ m: TreeMeta) -> (uid_t, gid_t) {
        guard let idBase else { return (m.uid, m.gid) }
        return (idBase + min(m.uid, 65535), idBase + min(m.gid, 65535))
    }

    mutating func enterDirectory(_ name: [UInt8]) throws(SandboxError) {
        let cname = TreeCopy.c(name), here = path(name)
        guard mkdirat(top.fd, cname, 0o700) == 0 || errno == EEXIST else { throw failure("making", here, errno) }
        let d = openat(top.fd, cname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard d >= 0 else { throw failure("opening", here, errno) }
        stack.append((d, here))
    }

    mutating func leaveDirectory(_ meta: TreeMeta) throws(SandboxError) {
        let (fd, here) = top
        try finish(fd, meta, path: here)
        if fd != rootFD { close(fd) }
        stack.removeLast()
    }

    mutating func file(_ name: [UInt8], _ meta: TreeMeta, linkable isLinkable: Bool,
                       runs: (_ body: (Int64, UnsafeRawBufferPointer) throws(SandboxError) -> Void) throws(SandboxError) -> Void) throws(SandboxError) {
        let here = path(name)
        let d = openat(top.fd, TreeCopy.c(name), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard d >= 0 else { throw failure("creating", here, errno) }
        defer { close(d) }
        try runs { (offset, bytes) throws(SandboxError) in
            let e = SparseCopy.writeRun(d, bytes, at: offset)
            if e != 0 { throw failure("writing", here, e) }
        }
        guard ftruncate(d, off_t(meta.size)) == 0 else { throw failure("sizing", here, errno) }
        try finish(d, meta, path: here)
        if isLinkable { linkable.append(here) }
    }

    mutating func hardLink(_ name: [UInt8], to index: Int) throws(SandboxError) {
        let here = path(name)
        guard index >= 0 && index < linkable.count else { throw SandboxError(.system, "linking \(Names.display(here)): no earlier file \(index)") }
        guard linkat(rootFD, TreeCopy.c(linkable[index]), top.fd, TreeCopy.c(name), 0) == 0 else { throw failure("linking", here, errno) }
    }

    mutating func symlink(_ name: [UInt8], target: [UInt8], _ meta: TreeMeta) throws(SandboxError) {
        guard symlinkat(TreeCopy.c(target), top.fd, TreeCopy.c(name)) == 0 else { throw failure("making the symlink", path(name), errno) }
        try finishNode(name, meta)
    }

    mutating func node(_ name: [UInt8], _ meta: TreeMeta) throws(SandboxError) {
        // Only FIFOs and whiteouts: a sandbox cannot make another device, and a copy never should.
        guard meta.isKeptNode else { return }
        guard mknodat(top.fd, TreeCopy.c(name), mode_t(meta.mode), dev_t(meta.rdev)) == 0 else { throw failure("making the node", path(name), errno) }
        try finishNode(name, meta)
    }

    /// Owner, then mode (a chown clears set-id bits), extended attributes, times of an open entry.
    private func finish(_ d: Int32, _ meta: TreeMeta, path here: [UInt8]) throws(SandboxError) {
        let (uid, gid) = owner(meta)
        guard fchown(d, uid, gid) == 0 else { throw failure("chown of", here, errno) }
        guard fchmod(d, mode_t(meta.mode & 0o7777)) == 0 else { throw failure("chmod of", here, errno) }
        for x in meta.xattrs {
            let r = x.value.withUnsafeBytes { v in sbx_fsetxattr(d, TreeCopy.c(x.name), v.baseAddress, x.value.count, 0) }
            if r != 0 && errno != ENOTSUP { throw failure("setting an extended attribute of", here, errno) }
        }
        var times = meta.times
        futimens(d, &times)
    }

    /// The same for a symlink or node, by name (a symlink has no mode of its own).
    private func finishNode(_ name: [UInt8], _ meta: TreeMeta) throws(SandboxError) {
        let cname = TreeCopy.c(name), here = path(name)
        let (uid, gid) = owner(meta)
        guard fchownat(top.fd, cname, uid, gid, AT_SYMLINK_NOFOLLOW) == 0 else { throw failure("chown of", here, errno) }
        if meta.type != UInt32(S_IFLNK), fchmodat(top.fd, cname, mode_t(meta.mode & 0o7777), 0) != 0 {
            throw failure("chmod of", here, errno)
        }
        if !meta.xattrs.isEmpty {
            let full = TreeCopy.c(targetRoot + [0x2F] + here)
            for x in meta.xattrs {
                let r = x.value.withUnsafeBytes { v in sbx_lsetxattr(full, TreeCopy.c(x.name), v.baseAddress, x.value.count, 0) }
                if r != 0 && errno != ENOTSUP { throw failure("setting an extended attribute of", here, errno) }
            }
        }
        var times = meta.times
        utimensat(top.fd, cname, &times, AT_SYMLINK_NOFOLLOW)
    }
}
