import Foundation
import SandboxCore
import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

/// Writing, creating, removing and moving in a WASM sandbox's workspace.
extension WorkspaceFiles {
    /// Checks that `newEntries` more entries and `growth` more bytes fit the workspace limits.
    func checkRoom(newEntries: Int, growth: Int64) throws(SandboxError) {
        guard newEntries > 0 || growth > 0 else { return }
        let usage = try DirectoryTree.usage(of: root)
        if usage.entries + newEntries > limits.workspaceFiles {
            throw SandboxError.over("workspace_files", limit: Int64(limits.workspaceFiles), actual: Int64(usage.entries + newEntries))
        }
        if growth > 0, usage.bytes + growth > limits.workspaceBytes {
            throw SandboxError.over("workspace", limit: limits.workspaceBytes, actual: usage.bytes + growth)
        }
    }

    /// Creates the directories of `path` below `dir` (which is `path`'s first `depth` names).
    func makeMissing(_ path: WorkspacePath, from dir: DirectoryFD, depth: Int) throws(SandboxError) -> DirectoryFD {
        var dir = dir
        for i in depth..<path.components.count {
            let name = path.components[i]
            let here = WorkspacePath(components: Array(path.components.prefix(i + 1)))
            let e = dir.makeDirectory(name, mode: 0o755)
            if e != 0 && e != EEXIST { throw Self.failure(e, here, in: dir, doing: "create the directory") }
            guard let next = dir.openDirectory(name) else { throw Self.failure(errno, here, in: dir, doing: "open the directory") }
            dir = next
        }
        return dir
    }

    /// Creates or replaces the regular file at `path` with `data` and permission bits `mode`
    /// (`& 0o777`), creating missing parent directories. The file appears whole or not at all (it
    /// is written beside its final name, then renamed over it).
    func write(_ path: WorkspacePath, data: [UInt8], mode: UInt32) throws(SandboxError) {
        guard let name = path.name else { throw Self.failure(EISDIR, path, in: root, doing: "write") }
        let size = Int64(data.count)
        if size > limits.fileSizeBytes { throw SandboxError.over("file_size", limit: limits.fileSizeBytes, actual: size) }
        let (existing, depth) = try existingPrefix(path.parent)
        var oldSize: Int64 = 0
        var isNew = true
        if depth == path.parent.components.count, let st = existing.stat(name) {
            switch st.st_mode & S_IFMT {
            case S_IFREG: (oldSize, isNew) = (Int64(st.st_size), false)
            case S_IFDIR: throw Self.failure(EISDIR, path, in: existing, doing: "write")
            case S_IFLNK: throw Self.failure(ELOOP, path, in: existing, doing: "write")
            default: throw SandboxError(.invalidRequest, "\(path.display) exists and is not a regular file; remove it first")
            }
        }
        try checkRoom(newEntries: path.parent.components.count - depth + (isNew ? 1 : 0), growth: size - oldSize)
        let parent = try makeMissing(path.parent, from: existing, depth: depth)
        var rng = SystemRandomNumberGenerator()
        let temp = Array(".sbx-write-\(String(rng.next(), radix: 16))".utf8)
        let fd = parent.openFile(temp, O_WRONLY | O_CREAT | O_EXCL, mode: 0o600)
        if fd < 0 { throw Self.failure(errno, path, in: parent, doing: "create") }
        var done = false
        defer {
            close(fd)
            if !done { parent.unlink(temp) }
        }
        var off = 0
        while off < data.count {
            let n = data.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + off, data.count - off) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { throw Self.failure(errno, path, in: parent, doing: "write") }
            off += n
        }
        if fchmod(fd, mode_t(mode & 0o777)) != 0 { throw Syscall.error("chmod \(path.display)", errno: errno) }
        let e = parent.rename(temp, to: name)
        if e != 0 { throw Self.failure(e, path, in: parent, doing: "replace") }
        done = true
    }

    /// Creates the directory at `path` (mode 0755); with `parents`, also the missing directories
    /// before it, and an existing directory is no error.
    func makeDirectory(_ path: WorkspacePath, parents: Bool) throws(SandboxError) {
        let (existing, depth) = try existingPrefix(path)
        if depth == path.components.count {
            if parents { return }
            throw Self.failure(EEXIST, path, in: existing, doing: "create the directory")
        }
        if !parents && depth < path.components.count - 1 {
            throw SandboxError(.notFound, "\(WorkspacePath(components: Array(path.components.prefix(depth + 1))).display) does not exist; create the parents first or pass parents")
        }
        try checkRoom(newEntries: path.components.count - depth, growth: 0)
        _ = try makeMissing(path, from: existing, depth: depth)
    }

    /// Removes the entry at `path` (a link itself, never what it points to); a directory that is
    /// not empty only with `recursive`.
    func remove(_ path: WorkspacePath, recursive: Bool) throws(SandboxError) {
        guard let name = path.name else {
            throw SandboxError(.invalidRequest, "/workspace itself cannot be removed; remove the entries in it")
        }
        let parent = try directory(path.parent)
        guard let st = parent.stat(name) else { throw Self.failure(errno, path, in: parent, doing: "remove") }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            if recursive { return try DirectoryTree.remove(name, in: parent) }
            let e = parent.unlink(name, directory: true)
            if e != 0 { throw Self.failure(e, path, in: parent, doing: "remove") }
        } else {
            let e = parent.unlink(name)
            if e != 0 { throw Self.failure(e, path, in: parent, doing: "remove") }
        }
    }

    /// Moves (renames) the entry at `from` to `to`; both below `/workspace`, `to`'s parent must
    /// exist. An existing file at `to` is replaced; a link is moved, never followed.
    func move(from: WorkspacePath, to: WorkspacePath) throws(SandboxError) {
        guard let fromName = from.name, let toName = to.name else {
            throw SandboxError(.invalidRequest, "/workspace itself cannot be moved or replaced; move the entries in it")
        }
        if from == to { return }
        if from.contains(to) {
            throw SandboxError(.invalidRequest, "\(to.display) is inside \(from.display); a directory cannot be moved into itself")
        }
        let source = try directory(from.parent)
        guard source.stat(fromName) != nil else { throw Self.failure(errno, from, in: source, doing: "move") }
        let target = try directory(to.parent)
        let rc = Names.withC(fromName) { f in Names.withC(toName) { renameat(source.fd, f, target.fd, $0) } }
        if rc != 0 {
            let e = errno
            if e == EINVAL { throw SandboxError(.invalidRequest, "\(from.display) cannot be moved to \(to.display) (a directory cannot be moved into itself)") }
            throw Self.failure(e, to, in: target, doing: "move \(from.display) to")
        }
    }
}
