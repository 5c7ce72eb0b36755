import Foundation
import SandboxCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A directory held open by descriptor. Every operation below it is relative to the descriptor
/// (`openat`, `fstatat`, `mkdirat`, …) and never follows a symlink, so a path component swapped
/// for a link while sandboxer works cannot redirect it outside the tree. Names are raw bytes: a
/// file name need not be valid UTF-8.
public final class DirectoryFD: Sendable {
    private let descriptor: Mutex<Int32>
    /// The descriptor, or -1 once closed.
    public var fd: Int32 { descriptor.withLock { $0 } }

    init(fd: Int32) { descriptor = Mutex(fd) }
    deinit { close() }

    /// Opens a directory by path. Only here may a path be resolved (it is the caller's own choice,
    /// e.g. `--workspace`); below it, nothing is resolved by path again.
    public static func open(path: String) throws(SandboxError) -> DirectoryFD {
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 { throw Syscall.error("open directory \(path)", errno: errno) }
        return DirectoryFD(fd: fd)
    }

    /// Opens a host workspace directory and locks it for one run (the lock lasts until
    /// ``close()``); refuses with `invalidState` when another run holds it.
    public static func openWorkspace(path: String) throws(SandboxError) -> DirectoryFD {
        let dir = try open(path: path)
        guard dir.tryLockExclusive() else {
            throw SandboxError(.invalidState, "workspace \(path) is in use by another run; wait for it to finish or give another directory")
        }
        return dir
    }

    /// Closes the descriptor (and so releases a lock taken on it). Idempotent.
    public func close() {
        let fd = descriptor.withLock { d in defer { d = -1 }; return d }
        if fd >= 0 { _ = Glibc.close(fd) }
    }

    /// Takes an exclusive `flock` on the directory without waiting; false when another holder
    /// (another run on the same directory) has it. Released by ``close()``.
    public func tryLockExclusive() -> Bool {
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            if errno != EINTR { return false }
        }
        return true
    }

    /// Opens the child directory `name` without following a symlink (nil when it is not a directory).
    public func openDirectory(_ name: [UInt8]) -> DirectoryFD? {
        let c = Names.withC(name) { openat(fd, $0, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
        return c < 0 ? nil : DirectoryFD(fd: c)
    }

    /// `fstat` of the directory itself.
    public func stat() -> Glibc.stat? {
        var st = Glibc.stat()
        return fstat(fd, &st) == 0 ? st : nil
    }

    /// `fstatat(…, AT_SYMLINK_NOFOLLOW)` of the entry `name` (nil when it does not exist).
    public func stat(_ name: [UInt8]) -> Glibc.stat? {
        var st = Glibc.stat()
        let rc = Names.withC(name) { fstatat(fd, $0, &st, AT_SYMLINK_NOFOLLOW) }
        return rc == 0 ? st : nil
    }

    /// Opens the entry `name` as a file with `flags` (`O_NOFOLLOW` and `O_CLOEXEC` always added).
    public func openFile(_ name: [UInt8], _ flags: Int32, mode: mode_t = 0o600) -> Int32 {
        Names.withC(name) { openat(fd, $0, flags | O_NOFOLLOW | O_CLOEXEC, mode) }
    }

    /// The names in the directory, without `.` and `..` (read through a fresh descriptor, so the
    /// listing never depends on another reader's offset).
    public func entries() throws(SandboxError) -> [[UInt8]] {
        try Self.entries(of: fd)
    }

    /// The names in the directory open at `fd` (any descriptor, also one this type does not own),
    /// without `.` and `..`, read through a fresh descriptor.
    public static func entries(of fd: Int32) throws(SandboxError) -> [[UInt8]] {
        let dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd < 0 { throw Syscall.error("open directory for listing", errno: errno) }
        guard let dir = fdopendir(dfd) else {
            let e = errno
            _ = Glibc.close(dfd)
            throw Syscall.error("fdopendir", errno: e)
        }
        defer { closedir(dir) }
        var out: [[UInt8]] = []
        while let ent = readdir(dir) {
            let name = withUnsafePointer(to: &ent.pointee.d_name) { p in
                p.withMemoryRebound(to: UInt8.self, capacity: 256) { b in
                    Array(UnsafeBufferPointer(start: b, count: strlen(UnsafeRawPointer(b).assumingMemoryBound(to: CChar.self))))
                }
            }
            if name == [0x2E] || name == [0x2E, 0x2E] { continue }
            out.append(name)
        }
        return out
    }

    /// `readlinkat` of the symlink `name`, as bytes.
    public func readLink(_ name: [UInt8]) -> [UInt8]? {
        var buf = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = Names.withC(name) { c in buf.withUnsafeMutableBufferPointer { readlinkat(fd, c, UnsafeMutableRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), Int(PATH_MAX)) } }
        return n < 0 ? nil : Array(buf[0..<n])
    }

    /// `mkdirat`; returns 0 or the errno.
    public func makeDirectory(_ name: [UInt8], mode: mode_t) -> Int32 {
        Names.withC(name) { mkdirat(fd, $0, mode) } == 0 ? 0 : errno
    }

    /// `symlinkat(target, self, name)`; returns 0 or the errno.
    public func makeSymlink(_ name: [UInt8], target: [UInt8]) -> Int32 {
        Names.withC(target) { t in Names.withC(name) { symlinkat(t, fd, $0) } } == 0 ? 0 : errno
    }

    /// `fchownat(…, AT_SYMLINK_NOFOLLOW)`.
    public func changeOwner(_ name: [UInt8], uid: UInt32, gid: UInt32) {
        _ = Names.withC(name) { fchownat(fd, $0, uid, gid, AT_SYMLINK_NOFOLLOW) }
    }

    /// `renameat` within this directory (replaces `to` atomically; a link at `to` is replaced, never followed).
    public func rename(_ from: [UInt8], to: [UInt8]) -> Int32 {
        Names.withC(from) { f in Names.withC(to) { renameat(fd, f, fd, $0) } } == 0 ? 0 : errno
    }

    /// Gives `from` the name `to` only if `to` does not exist (EEXIST otherwise), then drops `from`.
    public func renameNoReplace(_ from: [UInt8], to: [UInt8]) -> Int32 {
        let rc = Names.withC(from) { f in Names.withC(to) { linkat(fd, f, fd, $0, 0) } }
        let e = rc == 0 ? 0 : errno
        unlink(from)
        return e
    }

    /// `unlinkat` of a file or link (or of an empty directory with `directory`); returns 0 or the errno.
    @discardableResult
    public func unlink(_ name: [UInt8], directory: Bool = false) -> Int32 {
        Names.withC(name) { unlinkat(fd, $0, directory ? AT_REMOVEDIR : 0) } == 0 ? 0 : errno
    }
}

/// File names as bytes: C strings for syscalls, and a readable form for reports.
public enum Names {
    /// Calls `body` with `name` as a NUL-terminated C string.
    public static func withC<R>(_ name: [UInt8], _ body: (UnsafePointer<CChar>) -> R) -> R {
        (name + [0]).withUnsafeBufferPointer { b in
            b.withMemoryRebound(to: CChar.self) { body($0.baseAddress!) }
        }
    }

    /// The name as text: valid UTF-8 as is, any other byte as `\xNN`.
    public static func display(_ bytes: [UInt8]) -> String {
        if let s = String(validating: bytes, as: UTF8.self) { return s }
        var out = ""
        var i = 0
        while i < bytes.count {
            // Take the longest valid UTF-8 prefix (at most 4 bytes per scalar), else escape one byte.
            var taken = false
            for len in (1...min(4, bytes.count - i)).reversed() {
                if let s = String(validating: bytes[i..<(i + len)], as: UTF8.self), s.unicodeScalars.count == 1 {
                    out += s
                    i += len
                    taken = true
                    break
                }
            }
            if !taken {
                out += String(format: "\\x%02X", bytes[i])
                i += 1
            }
        }
        return out
    }
}
