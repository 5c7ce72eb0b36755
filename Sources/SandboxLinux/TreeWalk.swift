import CSandboxLinux
import Foundation
import SandboxCore

#if canImport(Glibc)
import Glibc
#endif

/// Reads a directory tree for a ``TreeSink``: every directory is opened relative to its parent
/// with `O_NOFOLLOW`, symlinks are read, never followed, names stay bytes, a file with several
/// links inside the tree is read once and linked after. Sockets and devices other than whiteouts
/// are skipped. Blocks (reads every file).
///
/// The walk keeps its own stack of open directories instead of recursing: the tree is a
/// sandbox's, as deep as the sandbox made it, and a recursion would end the process on a
/// thread's stack. A tree nested deeper than ``maxDepth`` is an error naming the limit.
struct TreeWalk {
    let sourceRoot: [UInt8]
    /// (device, inode) of a file with more than one link → its number among the linkable files.
    private var links: [Pair: Int] = [:]
    private var buffer = [UInt8](repeating: 0, count: 256 << 10)

    private struct Pair: Hashable { let dev: UInt64, ino: UInt64 }

    /// How deep directories may nest: what ``ArchiveReader`` reads back.
    static let maxDepth = ArchiveReader.maxDepth

    /// A directory being read: its descriptor, its path below the root, its stat, its entries and
    /// the next one to visit.
    private struct Frame {
        let fd: Int32
        let path: [UInt8]
        let st: stat
        let names: [[UInt8]]
        var next = 0
    }

    init(sourceRoot: String) { self.sourceRoot = Array(sourceRoot.utf8) }

    /// Walks the directory open at `root` into `sink`, ending with the root's own metadata.
    mutating func walk<S: TreeSink>(root: Int32, into sink: inout S) throws(SandboxError) {
        var rootStat = stat()
        guard fstat(root, &rootStat) == 0 else { throw failure("stat", [], errno) }
        // The root's descriptor is the caller's: only the frames above it are closed here.
        var stack = [Frame(fd: root, path: [], st: rootStat, names: try DirectoryFD.entries(of: root))]
        defer { for frame in stack.dropFirst() { close(frame.fd) } }
        while let top = stack.last {
            guard top.next < top.names.count else {
                stack.removeLast()
                defer { if !stack.isEmpty { close(top.fd) } }
                try sink.leaveDirectory(Self.meta(top.st, fd: top.fd))
                continue
            }
            let name = top.names[top.next]
            stack[stack.count - 1].next += 1
            let path = top.path.isEmpty ? name : top.path + [0x2F] + name
            guard let (fd, st) = try entry(name, top.fd, into: &sink, path: path) else { continue }
            guard stack.count <= Self.maxDepth else {
                close(fd)
                throw SandboxError(.limitExceeded, "\(display(path)): directories nested deeper than \(Self.maxDepth) levels cannot be kept")
            }
            let names: [[UInt8]]
            do { names = try DirectoryFD.entries(of: fd) } catch { close(fd); throw error }
            stack.append(Frame(fd: fd, path: path, st: st, names: names))  // closed by the defer if the sink fails
            try sink.enterDirectory(name)
        }
    }

    func display(_ path: [UInt8]) -> String { Names.display(path.isEmpty ? sourceRoot : sourceRoot + [0x2F] + path) }

    func failure(_ what: String, _ path: [UInt8], _ e: Int32) -> SandboxError { Syscall.error("\(what) \(display(path))", errno: e) }

    static func meta(_ st: stat, fd: Int32) -> TreeMeta {
        TreeMeta(st, xattrs: TreeMeta.readXattrs(list: { sbx_flistxattr(fd, $0, $1) }, get: { sbx_fgetxattr(fd, $0, $1, $2) }))
    }

    /// Hands one entry of the directory open at `src` to `sink`; a directory is opened and
    /// returned (descriptor and stat) for the walk to enter, anything else returns nil.
    private mutating func entry<S: TreeSink>(_ name: [UInt8], _ src: Int32, into sink: inout S,
                                             path: [UInt8]) throws(SandboxError) -> (Int32, stat)? {
        let cname = TreeCopy.c(name)
        var st = stat()
        guard fstatat(src, cname, &st, AT_SYMLINK_NOFOLLOW) == 0 else { throw failure("stat", path, errno) }
        switch st.st_mode & S_IFMT {
        case S_IFDIR:
            let s = openat(src, cname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard s >= 0 else { throw failure("opening", path, errno) }
            return (s, st)  // the walk enters it
        case S_IFREG:
            let key = Pair(dev: UInt64(st.st_dev), ino: UInt64(st.st_ino))
            if st.st_nlink > 1, let first = links[key] {
                try sink.hardLink(name, to: first)
                return nil
            }
            let s = openat(src, cname, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
            guard s >= 0 else { throw failure("opening", path, errno) }
            defer { close(s) }
            let size = Int64(st.st_size), root = sourceRoot
            try sink.file(name, Self.meta(st, fd: s), linkable: st.st_nlink > 1) { (body) throws(SandboxError) in
                try SparseCopy.forEachRun(of: s, size: size, buffer: &buffer,
                                          readFailed: { Syscall.error("reading \(Names.display(root + [0x2F] + path))", errno: $0) }, body)
            }
            if st.st_nlink > 1 { links[key] = links.count }
        case S_IFLNK:
            var target = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = target.withUnsafeMutableBytes { readlinkat(src, cname, $0.baseAddress!.assumingMemoryBound(to: CChar.self), Int(PATH_MAX)) }
            guard n >= 0 else { throw failure("readlink", path, errno) }
            try sink.symlink(name, target: Array(target.prefix(n)), nodeMeta(st, path: path))
        case S_IFCHR where st.st_rdev == 0, S_IFIFO:
            try sink.node(name, nodeMeta(st, path: path))
        default:
            break  // a socket or a device: nothing to copy
        }
        return nil
    }

    /// A symlink's or node's metadata, its extended attributes read by path (no descriptor to hold).
    private func nodeMeta(_ st: stat, path: [UInt8]) -> TreeMeta {
        let full = TreeCopy.c(sourceRoot + [0x2F] + path)
        return TreeMeta(st, xattrs: TreeMeta.readXattrs(list: { sbx_llistxattr(full, $0, $1) }, get: { sbx_lgetxattr(full, $0, $1, $2) }))
    }
}
