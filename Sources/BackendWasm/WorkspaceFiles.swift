import Foundation
import SandboxCore
import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

/// The files API of one long-lived WASM sandbox, working on its workspace directory only.
///
/// Every path is a ``WorkspacePath`` (below `/workspace`, no `..`, no NUL, bounded lengths), and
/// is walked one name at a time from the workspace's directory descriptor with
/// `openat(…, O_NOFOLLOW | O_DIRECTORY)`: a name without `/` or `..` opened relative to a real
/// directory stays below it, and a symbolic link — e.g. one the guest planted pointing at `/etc`
/// — ends the walk with `invalid_request` instead of being followed. The last name is opened,
/// created, renamed or removed relative to its parent's descriptor, again without following a link.
/// (`openat2(RESOLVE_BENEATH)` would give the same guarantee in one call; walking by name needs no
/// C shim and keeps one descriptor open per step.)
///
/// Writes and new directories count against the profile's `workspace` (bytes), `workspace_files`
/// and `file_size` limits (`limit_exceeded`, naming the limit and both sizes).
///
/// Every method blocks; callers run them off the cooperative pool (``WasmLiveBackend``).
struct WorkspaceFiles {
    /// The workspace (the guest's `/workspace`).
    let root: DirectoryFD
    let limits: Limits

    // MARK: walking

    /// The directory at `path`; every name must exist and be a directory (not a link to one).
    func directory(_ path: WorkspacePath) throws(SandboxError) -> DirectoryFD {
        let (dir, depth) = try existingPrefix(path)
        guard depth == path.components.count else {
            throw SandboxError(.notFound, "\(WorkspacePath(components: Array(path.components.prefix(depth + 1))).display) does not exist")
        }
        return dir
    }

    /// Opens as much of `path` as exists: the deepest directory reached and how many names it took.
    /// Stops at the first missing name; anything else that is not a directory is an error.
    func existingPrefix(_ path: WorkspacePath) throws(SandboxError) -> (DirectoryFD, Int) {
        var dir = root
        for (i, name) in path.components.enumerated() {
            guard let next = dir.openDirectory(name) else {
                let e = errno
                if e == ENOENT { return (dir, i) }
                throw Self.failure(e, WorkspacePath(components: Array(path.components.prefix(i + 1))), in: dir, doing: "open the directory")
            }
            dir = next
        }
        return (dir, path.components.count)
    }

    /// A typed error for a failed call on `path` (whose last name is in `dir`).
    static func failure(_ e: Int32, _ path: WorkspacePath, in dir: DirectoryFD, doing what: String) -> SandboxError {
        if let name = path.name, let st = dir.stat(name), (st.st_mode & S_IFMT) == S_IFLNK {
            return SandboxError(.invalidRequest, "\(path.display) is a symbolic link; the files API never follows links (use the path it points to below /workspace, or remove the link)")
        }
        switch e {
        case ENOENT: return SandboxError(.notFound, "\(path.display) does not exist")
        case ENOTDIR: return SandboxError(.invalidRequest, "\(path.display) is not a directory (or a name before it is not)")
        case EISDIR: return SandboxError(.invalidRequest, "\(path.display) is a directory; use the directory calls (list, mkdir, remove with recursive)")
        case ELOOP: return SandboxError(.invalidRequest, "\(path.display) is a symbolic link; the files API never follows links")
        case ENOTEMPTY, EEXIST where what.hasPrefix("remove"):
            return SandboxError(.invalidRequest, "the directory \(path.display) is not empty; remove it with recursive, or empty it first")
        case EEXIST: return SandboxError(.invalidRequest, "\(path.display) already exists")
        case ENAMETOOLONG: return SandboxError(.invalidRequest, "\(path.display) is too long; use shorter names")
        case ENOSPC, EDQUOT: return SandboxError(.system, "the host has no space left for \(path.display); free space on the host or retry later")
        default: return Syscall.error("\(what) \(path.display)", errno: e)
        }
    }

    /// The entry `name` of `dir` as the API shows it.
    static func entry(_ st: Glibc.stat, name: [UInt8], path: WorkspacePath, link: () -> [UInt8]?) -> FileEntry {
        let kind: FileEntry.Kind
        switch st.st_mode & S_IFMT {
        case S_IFREG: kind = .file
        case S_IFDIR: kind = .directory
        case S_IFLNK: kind = .symlink
        default: kind = .other
        }
        return FileEntry(
            name: path.isRoot ? "workspace" : Names.display(name), path: path.display, type: kind, size: Int64(st.st_size),
            mode: UInt32(st.st_mode & 0o7777), mtime: Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) / 1e9,
            target: kind == .symlink ? link().map(Names.display) : nil)
    }

    // MARK: reading

    /// The whole file at `path`; `limit_exceeded` (`read_limit`) when it is larger than `limit`.
    func read(_ path: WorkspacePath, limit: Int64) throws(SandboxError) -> [UInt8] {
        guard let name = path.name else { throw Self.failure(EISDIR, path, in: root, doing: "read") }
        let parent = try directory(path.parent)
        let fd = parent.openFile(name, O_RDONLY | O_NONBLOCK)
        if fd < 0 { throw Self.failure(errno, path, in: parent, doing: "open") }
        defer { close(fd) }
        var st = Glibc.stat()
        guard fstat(fd, &st) == 0 else { throw Syscall.error("fstat \(path.display)", errno: errno) }
        switch st.st_mode & S_IFMT {
        case S_IFREG: break
        case S_IFDIR: throw Self.failure(EISDIR, path, in: parent, doing: "read")
        default: throw SandboxError(.invalidRequest, "\(path.display) is not a regular file (a fifo, socket or device); only regular files can be read")
        }
        func tooLarge(_ size: Int64) -> SandboxError {
            SandboxError(.limitExceeded, "\(path.display) is \(size) bytes, over the read limit of \(limit) bytes; read it with a larger limit or split it inside the sandbox",
                         limit: .init(name: "read_limit", limit: limit, actual: size))
        }
        if Int64(st.st_size) > limit { throw tooLarge(Int64(st.st_size)) }
        var out = [UInt8](repeating: 0, count: Int(st.st_size) + 1)
        var got = 0
        while true {
            if got == out.count {
                if Int64(got) > limit { throw tooLarge(Int64(got)) }  // grew while being read
                let room = limit - Int64(got)  // ≥ 0 here
                out += [UInt8](repeating: 0, count: room >= 1 << 20 ? 1 << 20 : Int(room) + 1)
            }
            let want = out.count - got
            let n = out.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + got, want) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw Syscall.error("read \(path.display)", errno: errno) }
            if n == 0 { break }
            got += n
        }
        if Int64(got) > limit { throw tooLarge(Int64(got)) }
        return Array(out[0..<got])
    }

    /// The entry at `path` itself (a link is described, not followed).
    func stat(_ path: WorkspacePath) throws(SandboxError) -> FileEntry {
        guard let name = path.name else {
            guard let st = root.stat() else { throw Syscall.error("fstat /workspace", errno: errno) }
            return Self.entry(st, name: [], path: path, link: { nil })
        }
        let parent = try directory(path.parent)
        guard let st = parent.stat(name) else { throw Self.failure(errno, path, in: parent, doing: "stat") }
        return Self.entry(st, name: name, path: path, link: { parent.readLink(name) })
    }

    /// The entries of the directory at `path`, by name.
    func list(_ path: WorkspacePath) throws(SandboxError) -> [FileEntry] {
        let dir = try directory(path)
        var out: [FileEntry] = []
        for name in try dir.entries() {
            guard let st = dir.stat(name) else { continue }  // removed meanwhile
            out.append(Self.entry(st, name: name, path: path.appending(name), link: { dir.readLink(name) }))
        }
        return out.sorted { $0.name < $1.name }
    }
}
