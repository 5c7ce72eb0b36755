import AgentProtocol
import CSandboxAgent

#if canImport(Glibc)
import Glibc
#endif

/// A directory watched with inotify (`watchAdd`): its events are read as the poll loop sees them
/// and kept (at most ``maxEvents``) until the host takes them. A recursive watch watches every
/// subdirectory, and new ones as they appear, as the sandbox user (the directories that user
/// cannot read are left out); what a new directory already holds when its watch is added is
/// reported as created (a race with inotify's own event may report it twice).
final class DirectoryWatch {
    static let maxEvents = 4096
    static let maxDirectories = 8192
    /// Bytes of event names one take answers (well under a frame's 1 MiB).
    static let takeBudget = 512 << 10
    /// Kernel mask bits (linux/inotify.h).
    static let modify: UInt32 = 0x2, attrib: UInt32 = 0x4, movedFrom: UInt32 = 0x40, movedTo: UInt32 = 0x80
    static let create: UInt32 = 0x100, delete: UInt32 = 0x200, deleteSelf: UInt32 = 0x400, moveSelf: UInt32 = 0x800
    static let overflow: UInt32 = 0x4000, ignored: UInt32 = 0x8000, isDirectory: UInt32 = 0x4000_0000, onlyDirectory: UInt32 = 0x0100_0000
    static let dontFollow: UInt32 = 0x0200_0000
    static let mask = modify | attrib | movedFrom | movedTo | create | delete | deleteSelf | moveSelf | onlyDirectory

    let id: Int32
    let fd: Int32
    let root: String
    let recursive: Bool
    let user: SandboxUser
    /// Watch descriptor → directory relative to `root` ("" for the root).
    var directories: [Int32: String] = [:]
    var events: [AgentFsEvent] = []
    var overflowed = false
    /// When the host last took events (monotonic ms): a watch left alone long enough is dropped.
    var lastTaken = Clock.monotonicMs()

    private init(id: Int32, fd: Int32, root: String, recursive: Bool, user: SandboxUser) {
        self.id = id
        self.fd = fd
        self.root = root
        self.recursive = recursive
        self.user = user
    }

    /// A watch of `path` (a directory, checked as the sandbox user), or the error to answer.
    static func open(id: Int32, path: String, recursive: Bool, user: SandboxUser) -> Result<DirectoryWatch, Refusal> {
        guard case .success(let p) = Files.path(path) else { return .failure(Refusal(Files.path(path).refusal)) }
        if let refusal = user.asUser({ Files.magicLinkRefusal(p, followFinal: true) }) { return .failure(Refusal(refusal)) }
        let dir = user.asUser { Glibc.open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NONBLOCK) }
        guard dir >= 0 else { return .failure(Refusal(Files.failure("open directory", p))) }
        let onKernelFS = Files.onKernelFilesystem(dir)
        Glibc.close(dir)
        if onKernelFS { return .failure(Refusal(Files.kernelFilesystemRefusal(p))) }
        let fd = sbx_agent_inotify_init()
        guard fd >= 0 else { return .failure(Refusal(Files.failure("inotify_init", p))) }
        let w = DirectoryWatch(id: id, fd: fd, root: p, recursive: recursive, user: user)
        let wd = user.asUser { sbx_agent_inotify_add(fd, p, mask) }
        guard wd >= 0 else {
            let e = errno
            Glibc.close(fd)
            return .failure(Refusal(Files.failure("watch", p, e)))
        }
        w.directories[wd] = ""
        if recursive { w.addSubdirectories(of: "", announce: false) }
        return .success(w)
    }

    func absolute(_ relative: String) -> String {
        relative.isEmpty ? root : (root == "/" ? "/" : root + "/") + relative
    }

    /// Watches the subdirectories under `relative` (not following symlinks), as the sandbox user.
    /// `announce`: the directory just appeared, so what is already in it (made before its watch
    /// was added) is reported as created too.
    func addSubdirectories(of relative: String, announce: Bool) {
        var pending = [relative]
        user.asUser {
            while let dir = pending.popLast(), directories.count < Self.maxDirectories {
                guard let d = opendir(absolute(dir)) else { continue }
                defer { closedir(d) }
                if Files.onKernelFilesystem(dirfd(d)) { continue }
                while let ent = readdir(d) {
                    let name = withUnsafeBytes(of: ent.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
                    if name == "." || name == ".." { continue }
                    let child = dir.isEmpty ? name : dir + "/" + name
                    if announce { record(AgentFsEvent(name: child, kind: .create)) }
                    guard ent.pointee.d_type == UInt8(DT_DIR) else { continue }
                    let wd = sbx_agent_inotify_add(fd, absolute(child), Self.mask | Self.dontFollow)
                    if wd >= 0 {
                        directories[wd] = child
                        pending.append(child)
                    }
                }
            }
        }
    }

    func record(_ event: AgentFsEvent) {
        guard events.count < Self.maxEvents else { overflowed = true; return }
        events.append(event)
    }

    /// Reads what the kernel queued.
    func read() {
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { return }
            var off = 0
            while off + 16 <= n {
                let (wd, mask, len) = buf.withUnsafeBytes { raw in
                    (raw.loadUnaligned(fromByteOffset: off, as: Int32.self), raw.loadUnaligned(fromByteOffset: off + 4, as: UInt32.self),
                     Int(raw.loadUnaligned(fromByteOffset: off + 12, as: UInt32.self)))
                }
                let nameBytes = buf[(off + 16)..<min(n, off + 16 + len)].prefix { $0 != 0 }
                off += 16 + len
                handle(wd: wd, mask: mask, name: String(decoding: nameBytes, as: UTF8.self))
            }
        }
    }

    func handle(wd: Int32, mask: UInt32, name: String) {
        if mask & Self.overflow != 0 { overflowed = true; return }
        if mask & Self.ignored != 0 { directories[wd] = nil; return }
        guard let dir = directories[wd], !name.isEmpty else { return }
        let path = dir.isEmpty ? name : dir + "/" + name
        let kind: AgentFsEvent.Kind
        if mask & (Self.create | Self.movedTo) != 0 {
            kind = .create
            if recursive, mask & Self.isDirectory != 0, directories.count < Self.maxDirectories {
                record(AgentFsEvent(name: path, kind: .create))
                let wd = user.asUser { sbx_agent_inotify_add(fd, absolute(path), Self.mask | Self.dontFollow) }
                if wd >= 0 {
                    directories[wd] = path
                    addSubdirectories(of: path, announce: true)
                }
                return
            }
        } else if mask & Self.modify != 0 {
            kind = .write
        } else if mask & Self.delete != 0 {
            kind = .remove
        } else if mask & Self.movedFrom != 0 {
            kind = .rename
        } else if mask & Self.attrib != 0 {
            kind = .chmod
        } else {
            return
        }
        record(AgentFsEvent(name: path, kind: kind))
    }

    /// The events so far, as many as fit one answer frame (``takeBudget`` bytes of names); the
    /// rest wait for the next take.
    func take() -> AgentEvent {
        read()
        var budget = Self.takeBudget
        let count = events.prefix { e in
            budget -= e.name.utf8.count + 32
            return budget >= 0
        }.count
        let taken = Array(events.prefix(count))
        events.removeFirst(count)
        let lost = overflowed
        overflowed = false
        lastTaken = Clock.monotonicMs()
        return .fsEvents(taken, overflowed: lost)
    }

    func close() { Glibc.close(fd) }
}
