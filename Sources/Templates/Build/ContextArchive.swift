import Foundation
import SandboxCore
import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

/// A build context sent as a tar (`POST /v1/templates`), unpacked into an empty directory. The
/// tar is untrusted: a member with an absolute path or a `..` component, a member reached through
/// a symlink, a symlink or hard link leading out of the context, and device nodes fail the unpack
/// naming the member; files get their mode (no set-id bits), owners are not kept (COPY sets them).
public enum ContextArchive {
    /// The most a context tar may be (the request body's cap; 413 over it).
    public static let maxBytes: Int64 = 256 << 20

    /// Unpacks the tar at `file` into `directory` (empty), blocking the calling thread.
    public static func unpack(file: String, into directory: String) throws(SandboxError) {
        let fd = open(file, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Syscall.error("opening \(file)", errno: errno) }
        defer { close(fd) }
        let root = open(directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard root >= 0 else { throw Syscall.error("opening \(directory)", errno: errno) }
        defer { close(root) }
        let tar = TarReader(fd: fd, source: "the build context")
        var chunk: [UInt8] = []
        while let entry = try tar.next() {
            let parts = try components(entry.path, member: entry.path)
            guard let leaf = parts.last else { continue }
            let parent = try openDirectory(root, Array(parts.dropLast()), member: entry.path)
            defer { close(parent) }
            switch entry.kind {
            case .directory:
                if mkdirat(parent, leaf, 0o755) != 0 && errno != EEXIST { throw fail("making the directory", entry.path) }
            case .file:
                unlinkat(parent, leaf, 0)
                let out = openat(parent, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode_t(entry.mode & 0o777))
                guard out >= 0 else { throw fail("creating", entry.path) }
                defer { close(out) }
                while true {
                    try tar.read(into: &chunk)
                    if chunk.isEmpty { break }
                    try Syscall.writeAll(out, chunk, entry.path)
                }
                fchmod(out, mode_t(entry.mode & 0o777))
            case .symlink:
                // The target, taken from the member's directory, must stay inside the context.
                if entry.linkTarget.hasPrefix("/") || !stays(parts.dropLast() + entry.linkTarget.split(separator: "/").map(String.init)) {
                    throw SandboxError(.invalidRequest, "build context: symlink \(entry.path) → \(entry.linkTarget) leads out of the context; links must stay inside it")
                }
                unlinkat(parent, leaf, 0)
                guard symlinkat(entry.linkTarget, parent, leaf) == 0 else { throw fail("creating the symlink", entry.path) }
            case .hardLink:
                let target = try components(entry.linkTarget, member: entry.path)
                guard let targetLeaf = target.last else { throw SandboxError(.invalidRequest, "build context: hard link \(entry.path) has no target") }
                let dir = try openDirectory(root, Array(target.dropLast()), member: entry.path)
                defer { close(dir) }
                unlinkat(parent, leaf, 0)
                guard linkat(dir, targetLeaf, parent, leaf, 0) == 0 else {
                    throw SandboxError(.invalidRequest, "build context: hard link \(entry.path) points at \(entry.linkTarget), which the context does not have before it")
                }
            case .characterDevice, .blockDevice:
                throw SandboxError(.invalidRequest, "build context: member \(entry.path) is a device node; a context holds files, directories and links")
            case .fifo, .other:
                continue
            }
        }
    }

    /// A member's path as components: absolute paths and `..` are refused.
    public static func components(_ path: String, member: String) throws(SandboxError) -> [String] {
        if path.hasPrefix("/") { throw SandboxError(.invalidRequest, "build context: member \(member) has an absolute path; paths are relative to the context") }
        let parts = path.split(separator: "/").map(String.init).filter { $0 != "." }
        if parts.contains("..") { throw SandboxError(.invalidRequest, "build context: member \(member) has a '..' component, which would leave the context") }
        return parts
    }

    /// Whether a path of components (with `..`) never goes above the context's root.
    static func stays(_ parts: [String]) -> Bool {
        var depth = 0
        for p in parts where p != "." && !p.isEmpty {
            depth += p == ".." ? -1 : 1
            if depth < 0 { return false }
        }
        return true
    }

    /// Opens (making) `parts` below `base` one directory at a time, never following a symlink.
    static func openDirectory(_ base: Int32, _ parts: [String], member: String) throws(SandboxError) -> Int32 {
        var current = dup(base)
        guard current >= 0 else { throw Syscall.error("dup", errno: errno) }
        for part in parts {
            if mkdirat(current, part, 0o755) != 0 && errno != EEXIST {
                close(current)
                throw fail("making the directory \(part) of", member)
            }
            let next = openat(current, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            let e = errno
            close(current)
            guard next >= 0 else {
                if e == ELOOP || e == ENOTDIR {
                    throw SandboxError(.invalidRequest, "build context: member \(member) goes through \(part), which is a symlink or a file")
                }
                throw Syscall.error("build context: opening \(part) of \(member)", errno: e)
            }
            current = next
        }
        return current
    }

    static func fail(_ doing: String, _ member: String) -> SandboxError {
        Syscall.error("build context: \(doing) \(member)", errno: errno)
    }
}
