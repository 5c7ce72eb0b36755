import AgentProtocol
import CSandboxAgent

#if canImport(Glibc)
import Glibc
#endif

/// File operations, run with the sandbox user's fsuid/fsgid in the sandbox's own mount namespace.
enum Files {
    static func errorCode(_ e: Int32) -> AgentErrorCode {
        switch e {
        case ENOENT: return .notFound
        case EACCES, EPERM, EROFS: return .permissionDenied
        case EEXIST: return .alreadyExists
        case ENOTDIR: return .notDirectory
        case EISDIR: return .isDirectory
        case ENOTEMPTY: return .notEmpty
        case ENAMETOOLONG, ELOOP: return .invalidPath
        case EFBIG: return .tooLarge
        case ENOSPC, EDQUOT: return .noSpace
        default: return .system
        }
    }

    /// Whether `fd` is on procfs or sysfs. The agent is pid 1: through the files API, `/proc/1`
    /// (or `/proc/self`, or a symlink into either) would be the agent's own maps, environment and
    /// descriptors. Those are refused whatever the path said; a sandbox's code reads its own
    /// /proc through exec.
    static func onKernelFilesystem(_ fd: Int32) -> Bool { sbx_agent_on_kernel_fs(fd) != 0 }

    static func kernelFilesystemRefusal(_ p: String) -> AgentEvent {
        .error(.permissionDenied, "\(p) is on /proc or /sys, which the files API does not open (the agent's own process files live there); read it with exec instead")
    }

    /// A refusal when `p` resolves through a /proc magic link (`/proc/1/root/…`, `/proc/self/fd/3`):
    /// those lead to the agent's own root, working directory and descriptors, not to a file the
    /// sandbox user named. `followFinal`: the operation follows a symlink in the last component.
    static func magicLinkRefusal(_ p: String, followFinal: Bool) -> AgentEvent? {
        guard sbx_agent_through_magic_link(p, followFinal ? 1 : 0) != 0 else { return nil }
        return .error(.permissionDenied, "\(p) goes through a /proc magic link (/proc/<pid>/root, cwd, exe or fd/<n>), which the files API does not follow; read it with exec instead")
    }

    static func failure(_ what: String, _ path: String, _ e: Int32 = errno) -> AgentEvent {
        .error(errorCode(e), "\(what) \(path): \(String(cString: strerror(e)))", errno: e)
    }

    /// The validated path of a request, or the error to answer.
    static func path(_ p: String?, _ name: String = "path") -> Result<String, Refusal> {
        guard let p else { return .failure(Refusal(.error(.badRequest, "missing \(name)"))) }
        if let problem = AgentPath.problem(p) { return .failure(Refusal(.error(.invalidPath, problem))) }
        return .success(p)
    }

    static func entry(_ path: String, name: String) -> Result<AgentEntry, Refusal> {
        var st = Glibc.stat()
        guard lstat(path, &st) == 0 else { return .failure(Refusal(failure("stat", path))) }
        var type = "other"
        var target: String?
        switch st.st_mode & S_IFMT {
        case S_IFREG: type = "file"
        case S_IFDIR: type = "directory"
        case S_IFLNK:
            type = "symlink"
            var buf = [UInt8](repeating: 0, count: 4097)
            let n = buf.withUnsafeMutableBytes { readlink(path, $0.baseAddress!.assumingMemoryBound(to: CChar.self), 4096) }
            if n >= 0 { target = String(decoding: buf[0..<n], as: UTF8.self) }
        default: break
        }
        return .success(AgentEntry(
            name: name, path: path, type: type, size: Int64(st.st_size), mode: UInt32(st.st_mode & 0o7777),
            mtime: Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) / 1e9, target: target,
            uid: st.st_uid, gid: st.st_gid, metadata: metadata(path)))
    }

    static func baseName(_ p: String) -> String {
        p == "/" ? "/" : String(p.split(separator: "/").last ?? "")
    }

    static func statEntry(_ path: String) -> AgentEvent {
        switch Files.path(path) {
        case .failure(let e): return e.event
        case .success(let p):
            if let refusal = magicLinkRefusal(p, followFinal: false) { return refusal }
            switch entry(p, name: baseName(p)) {
            case .failure(let e): return e.event
            case .success(let en): return .entry(en)
            }
        }
    }

    static func listDir(_ path: String) -> AgentEvent {
        guard case .success(let p) = Files.path(path) else { return Files.path(path).refusal }
        if let refusal = magicLinkRefusal(p, followFinal: true) { return refusal }
        guard let dir = opendir(p) else { return failure("open directory", p) }
        defer { closedir(dir) }
        if onKernelFilesystem(dirfd(dir)) { return kernelFilesystemRefusal(p) }
        var entries: [AgentEntry] = []
        while let ent = readdir(dir) {
            let name = withUnsafeBytes(of: ent.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            if name == "." || name == ".." { continue }
            if entries.count >= 100_000 { break }
            if case .success(let e) = entry(p == "/" ? "/" + name : p + "/" + name, name: name) { entries.append(e) }
        }
        return .entries(entries.sorted { $0.name < $1.name })
    }

    static func makeDirectories(_ p: String, mode: mode_t, parents: Bool) -> Int32 {
        if mkdir(p, mode) == 0 { return 0 }
        let e = errno
        if parents {
            if e == EEXIST {
                var st = Glibc.stat()
                return fstatat(AT_FDCWD, p, &st, 0) == 0 && (st.st_mode & S_IFMT) == S_IFDIR ? 0 : ENOTDIR
            }
            if e == ENOENT {
                let parent = String(p[..<(p.lastIndex(of: "/") ?? p.startIndex)])
                if !parent.isEmpty {
                    let pe = makeDirectories(parent, mode: 0o755, parents: true)
                    if pe != 0 { return pe }
                    return mkdir(p, mode) == 0 || errno == EEXIST ? 0 : errno
                }
            }
        }
        return e
    }

    static func makeDir(_ path: String, parents: Bool, mode: UInt32?) -> AgentEvent {
        guard case .success(let p) = Files.path(path) else { return Files.path(path).refusal }
        if let refusal = magicLinkRefusal(p, followFinal: false) { return refusal }
        let e = makeDirectories(p, mode: mode_t(mode ?? 0o755), parents: parents)
        return e == 0 ? .ok : failure("mkdir", p, e)
    }

    static func move(_ source: String, _ destination: String) -> AgentEvent {
        guard case .success(let from) = path(source) else { return path(source).refusal }
        guard case .success(let to) = path(destination, "to") else { return path(destination, "to").refusal }
        if let refusal = magicLinkRefusal(from, followFinal: false) ?? magicLinkRefusal(to, followFinal: false) { return refusal }
        return rename(from, to) == 0 ? .ok : failure("move \(from) to", to)
    }

    static func removeTree(_ p: String) -> Int32 {
        var st = Glibc.stat()
        guard lstat(p, &st) == 0 else { return errno }
        if (st.st_mode & S_IFMT) != S_IFDIR { return unlink(p) == 0 ? 0 : errno }
        guard let dir = opendir(p) else { return errno }
        var names: [String] = []
        while let ent = readdir(dir) {
            let name = withUnsafeBytes(of: ent.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        closedir(dir)
        for n in names {
            let e = removeTree(p + "/" + n)
            if e != 0 { return e }
        }
        return rmdir(p) == 0 ? 0 : errno
    }

    static func remove(_ path: String, recursive: Bool) -> AgentEvent {
        guard case .success(let p) = Files.path(path) else { return Files.path(path).refusal }
        if p == "/" { return .error(.permissionDenied, "refusing to remove /") }
        if let refusal = magicLinkRefusal(p, followFinal: false) { return refusal }
        if recursive {
            let e = removeTree(p)
            return e == 0 ? .ok : failure("remove", p, e)
        }
        var st = Glibc.stat()
        guard lstat(p, &st) == 0 else { return failure("remove", p) }
        let rc = (st.st_mode & S_IFMT) == S_IFDIR ? rmdir(p) : unlink(p)
        return rc == 0 ? .ok : failure("remove", p)
    }

    /// `read`: the file's bytes in chunks (sent as `content`, `file` frames, `ok`), or the error event.
    static func read(_ path: String, limit: Int64?) -> Result<[[UInt8]], Refusal> {
        guard case .success(let p) = Files.path(path) else { return .failure(Refusal(Files.path(path).refusal)) }
        if let refusal = magicLinkRefusal(p, followFinal: true) { return .failure(Refusal(refusal)) }
        // O_NONBLOCK: a FIFO planted by the user must not block the agent.
        let fd = open(p, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
        guard fd >= 0 else { return .failure(Refusal(failure("open", p))) }
        defer { close(fd) }
        if onKernelFilesystem(fd) { return .failure(Refusal(kernelFilesystemRefusal(p))) }
        var st = Glibc.stat()
        guard fstat(fd, &st) == 0 else { return .failure(Refusal(failure("stat", p))) }
        if (st.st_mode & S_IFMT) == S_IFDIR { return .failure(Refusal(failure("read", p, EISDIR))) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { return .failure(Refusal(.error(.badRequest, "\(p) is not a regular file"))) }
        let limit = limit ?? Int64.max
        if Int64(st.st_size) > limit {
            return .failure(Refusal(.error(.tooLarge, "\(p) is \(st.st_size) bytes, over the read limit of \(limit) bytes")))
        }
        var chunks: [[UInt8]] = []
        var total: Int64 = 0
        var buf = [UInt8](repeating: 0, count: Frame.chunk)
        while true {
            let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return .failure(Refusal(failure("read", p)))
            }
            if n == 0 { break }
            total += Int64(n)
            if total > limit { return .failure(Refusal(.error(.tooLarge, "\(p) grew over the read limit of \(limit) bytes"))) }
            chunks.append(Array(buf[0..<n]))
        }
        return .success(chunks)
    }

    /// `write`: opens (creating parents), returns the fd to feed `file` frames to, or the error.
    static func openForWrite(_ path: String, size: Int64, mode: UInt32) -> Result<Int32, Refusal> {
        guard case .success(let p) = Files.path(path) else { return .failure(Refusal(Files.path(path).refusal)) }
        guard size >= 0 else { return .failure(Refusal(.error(.badRequest, "write needs a size of 0 or more"))) }
        if let refusal = magicLinkRefusal(p, followFinal: false) { return .failure(Refusal(refusal)) }
        if let slash = p.lastIndex(of: "/"), slash != p.startIndex {
            let e = makeDirectories(String(p[..<slash]), mode: 0o755, parents: true)
            if e != 0 { return .failure(Refusal(failure("create parent directories of", p, e))) }
        }
        let fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY, mode_t(mode))
        guard fd >= 0 else { return .failure(Refusal(failure("create", p))) }
        var st = Glibc.stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            return .failure(Refusal(.error(.badRequest, "\(p) is not a regular file")))
        }
        if onKernelFilesystem(fd) {
            close(fd)
            return .failure(Refusal(kernelFilesystemRefusal(p)))
        }
        return .success(fd)
    }
}

/// A refused request: the error event to answer with.
struct Refusal: Error {
    var event: AgentEvent
    init(_ event: AgentEvent) { self.event = event }
}

extension Result where Failure == Refusal {
    /// The error event of a failed validation (only read on failures).
    var refusal: AgentEvent {
        if case .failure(let e) = self { return e.event }
        return .error(.system, "internal: expected a failure")
    }
}
