import SandboxCore

#if canImport(Glibc)
import Glibc
#endif

/// Depth-first walks of a directory tree by descriptor, for the files API, for removing a sandbox
/// and for removing whatever tree a sandbox left on the host: one directory descriptor open at a
/// time (however deep the guest nested its directories), every step `openat(…, O_NOFOLLOW |
/// O_DIRECTORY)`, and the way back up through `..` checked against the device and inode the walk
/// came from, so a directory moved meanwhile stops the walk instead of leading it anywhere else.
/// Symbolic links are entries, never followed.
public enum DirectoryTree {
    /// Most entries one walk visits (a workspace this large is over any sensible limit anyway).
    public static let maxEntries = 1 << 22

    /// What a walk found: apparent bytes of regular files and the number of entries (files,
    /// directories, links, anything) below the top directory, not counting it.
    public struct Usage: Sendable, Equatable {
        public var bytes: Int64
        public var entries: Int
        public init(bytes: Int64 = 0, entries: Int = 0) { (self.bytes, self.entries) = (bytes, entries) }
    }

    private struct Frame {
        var names: [[UInt8]]
        var index = 0
        var device: UInt64
        var inode: UInt64
        /// The directory's name in its parent (nil for the top).
        var name: [UInt8]?
    }

    private static func identity(_ dir: DirectoryFD) throws(SandboxError) -> (UInt64, UInt64) {
        guard let st = dir.stat() else { throw Syscall.error("fstat a workspace directory", errno: errno) }
        return (UInt64(st.st_dev), UInt64(st.st_ino))
    }

    /// Walks everything below `top`. `visit(dir, name, stat)` sees each entry in its directory
    /// and returns whether to descend into it (only directories are descended into); `leave(dir,
    /// name)` is called in the parent after a descended directory's entries were all visited.
    public static func walk(
        _ top: DirectoryFD,
        visit: (DirectoryFD, [UInt8], Glibc.stat) throws(SandboxError) -> Bool,
        leave: (DirectoryFD, [UInt8]) throws(SandboxError) -> Void = { _, _ in }
    ) throws(SandboxError) {
        guard var current = top.openDirectory([0x2E]) else { throw Syscall.error("open a workspace directory", errno: errno) }
        let (dev, ino) = try identity(current)
        var stack = [Frame(names: try current.entries(), device: dev, inode: ino, name: nil)]
        var visited = 0
        while let frame = stack.last {
            if frame.index < frame.names.count {
                let name = frame.names[frame.index]
                stack[stack.count - 1].index += 1
                guard let st = current.stat(name) else { continue }  // gone meanwhile
                visited += 1
                if visited > maxEntries {
                    throw SandboxError(.limitExceeded, "the workspace holds more than \(maxEntries) entries; remove some from inside the sandbox")
                }
                guard try visit(current, name, st), (st.st_mode & S_IFMT) == S_IFDIR else { continue }
                guard let child = current.openDirectory(name) else { continue }  // replaced meanwhile: not a directory now
                let (cdev, cino) = try identity(child)
                let names = try child.entries()
                current = child
                stack.append(Frame(names: names, device: cdev, inode: cino, name: name))
            } else {
                stack.removeLast()
                guard let parent = stack.last, let name = frame.name else { break }
                guard let up = current.openDirectory([0x2E, 0x2E]), let id = try? identity(up),
                      id.0 == parent.device, id.1 == parent.inode
                else {
                    throw SandboxError(.invalidState, "the workspace changed while it was being walked (a directory was moved); retry")
                }
                current = up
                try leave(current, name)
            }
        }
    }

    /// The usage of everything below `dir`.
    public static func usage(of dir: DirectoryFD) throws(SandboxError) -> Usage {
        var usage = Usage()
        try walk(dir) { _, _, st in
            usage.entries += 1
            if (st.st_mode & S_IFMT) == S_IFREG { usage.bytes += Int64(st.st_size) }
            return true
        }
        return usage
    }

    /// Removes everything below `dir` (links are removed, never followed).
    public static func removeContents(of dir: DirectoryFD) throws(SandboxError) {
        try walk(dir) { parent, name, st throws(SandboxError) in
            if (st.st_mode & S_IFMT) == S_IFDIR { return true }
            let e = parent.unlink(name)
            if e != 0 && e != ENOENT { throw Syscall.error("remove \(Names.display(name))", errno: e) }
            return false
        } leave: { parent, name throws(SandboxError) in
            let e = parent.unlink(name, directory: true)
            if e != 0 && e != ENOENT { throw Syscall.error("remove the directory \(Names.display(name))", errno: e) }
        }
    }

    /// Removes the entry `name` of `parent`, and everything below it when it is a directory.
    public static func remove(_ name: [UInt8], in parent: DirectoryFD) throws(SandboxError) {
        guard let st = parent.stat(name) else { return }
        if (st.st_mode & S_IFMT) == S_IFDIR, let dir = parent.openDirectory(name) {
            try removeContents(of: dir)
            dir.close()
            let e = parent.unlink(name, directory: true)
            if e != 0 && e != ENOENT { throw Syscall.error("remove the directory \(Names.display(name))", errno: e) }
        } else {
            let e = parent.unlink(name)
            if e != 0 && e != ENOENT { throw Syscall.error("remove \(Names.display(name))", errno: e) }
        }
    }

    /// Removes what can be removed below `dir` without reporting what cannot: a directory on
    /// another device (a mount point) is neither entered nor removed, nor are the directories
    /// leading to it. Throws only when the tree changed under the walk (see ``walk(_:visit:leave:)``).
    static func removeAll(below dir: DirectoryFD, device: UInt64) throws(SandboxError) {
        try walk(dir) { parent, name, st in
            if (st.st_mode & S_IFMT) == S_IFDIR { return UInt64(st.st_dev) == device }
            _ = parent.unlink(name)
            return false
        } leave: { parent, name in
            _ = parent.unlink(name, directory: true)
        }
    }
}
