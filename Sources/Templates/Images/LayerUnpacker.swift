import Foundation
import SandboxCore
import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

/// Unpacks one image layer (a tar stream) into an empty directory in overlayfs's own format, so the
/// unpacked layers of an image are directly the lower directories of a sandbox's root:
/// - a whiteout `.wh.NAME` becomes the character device 0/0 `NAME` (overlayfs hides the lower `NAME`),
///   `.wh..wh..opq` the directory's `trusted.overlay.opaque=y` (hides the lower directory's content);
/// - hard links are made within the layer, or copied from the layers below when their target is there;
/// - owners, modes and modification times are kept (directories' times are not).
///
/// The tar is untrusted: a member with an absolute path or a `..` component, a member reached
/// through a symlink or a file, and a hard link whose target no layer has fail the unpack naming the
/// member; nothing is ever opened by following a symlink. Device nodes other than whiteouts are
/// skipped (sandboxes mount their root `nodev`), and the content is capped at `limit` bytes.
public struct LayerUnpacker {
    /// The directory to fill (empty).
    public var root: String
    /// The unpacked layers below this one, topmost first (hard-link targets may live there).
    public var lowers: [String]
    /// At most this many bytes of file content.
    public var limit: Int64
    /// The layer, for messages.
    public var name: String

    public init(root: String, lowers: [String] = [], limit: Int64, name: String) {
        (self.root, self.lowers, self.limit, self.name) = (root, lowers, limit, name)
    }

    /// What an unpack made.
    public struct Summary: Sendable, Equatable {
        public var entries = 0
        public var bytes: Int64 = 0
        public var whiteouts = 0
        public var skippedDevices = 0
    }

    /// Reads every member of `tar` into ``root``, blocking the calling thread.
    public func unpack(_ tar: TarReader) throws(SandboxError) -> Summary {
        let rootFD = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard rootFD >= 0 else { throw Syscall.error("opening \(root)", errno: errno) }
        defer { close(rootFD) }
        var summary = Summary()
        var chunk: [UInt8] = []
        while let entry = try tar.next() {
            summary.entries += 1
            let parts = try Self.components(entry.path, layer: name)
            guard let leaf = parts.last else { continue }  // "./": the layer's root itself
            let parent = try openDirectory(rootFD, Array(parts.dropLast()), create: true, member: entry.path)
            defer { close(parent) }
            if leaf.hasPrefix(".wh.") {
                summary.whiteouts += 1
                try whiteout(parent, leaf, member: entry.path)
                continue
            }
            switch entry.kind {
            case .directory:
                try makeDirectory(parent, leaf, entry)
            case .file:
                try removeExisting(parent, leaf, member: entry.path)
                let fd = openat(parent, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
                guard fd >= 0 else { throw fail("creating", entry.path) }
                defer { close(fd) }
                if let real = entry.sparseSize {
                    try sparseContent(tar, fd: fd, realSize: real, entry: entry, summary: &summary)
                } else {
                    while true {
                        try tar.read(into: &chunk)
                        if chunk.isEmpty { break }
                        try charge(Int64(chunk.count), &summary)
                        try Syscall.writeAll(fd, chunk, entry.path)
                    }
                }
                try setOwnerAndMode(fd: fd, entry)
                var times = [timespec(tv_sec: Int(entry.mtime), tv_nsec: 0), timespec(tv_sec: Int(entry.mtime), tv_nsec: 0)]
                _ = futimens(fd, &times)
            case .symlink:
                try removeExisting(parent, leaf, member: entry.path)
                guard !entry.linkTarget.isEmpty, symlinkat(entry.linkTarget, parent, leaf) == 0 else { throw fail("creating the symlink", entry.path) }
                _ = fchownat(parent, leaf, entry.uid, entry.gid, AT_SYMLINK_NOFOLLOW)
                var times = [timespec(tv_sec: Int(entry.mtime), tv_nsec: 0), timespec(tv_sec: Int(entry.mtime), tv_nsec: 0)]
                _ = utimensat(parent, leaf, &times, AT_SYMLINK_NOFOLLOW)
            case .hardLink:
                try removeExisting(parent, leaf, member: entry.path)
                try hardLink(rootFD, parent, leaf, entry)
            case .fifo:
                try removeExisting(parent, leaf, member: entry.path)
                guard mknodat(parent, leaf, S_IFIFO | 0o600, 0) == 0 else { throw fail("creating the FIFO", entry.path) }
                try setOwnerAndMode(parent, leaf, entry)
            case .characterDevice, .blockDevice:
                summary.skippedDevices += 1
            case .other(let type):
                if type == UInt8(ascii: "V") { continue }  // a volume label
                throw SandboxError(.invalidRequest, "layer \(name): member \(entry.path) has tar type '\(Character(UnicodeScalar(type)))', which image layers do not use (sparse and multi-volume archives are not supported)")
            }
        }
        return summary
    }

    /// Counts unpacked bytes against the layer size cap.
    private func charge(_ bytes: Int64, _ summary: inout Summary) throws(SandboxError) {
        summary.bytes += bytes
        guard summary.bytes <= limit else {
            throw SandboxError(.invalidRequest, "layer \(name) unpacks to more than \(ByteSize.format(limit)) (the layer size cap); use a smaller layer or raise the cap")
        }
    }

    /// A pax sparse member: its data ranges written where the map puts them, holes left as holes,
    /// the file then cut to its real size.
    private func sparseContent(_ tar: TarReader, fd: Int32, realSize: Int64, entry: TarEntry, summary: inout Summary) throws(SandboxError) {
        let map = try TarSparseMap.read(from: tar, realSize: realSize, member: entry.path)
        var chunk: [UInt8] = []
        for range in map.ranges {
            guard lseek(fd, off_t(range.offset), SEEK_SET) >= 0 else { throw fail("seeking in", entry.path) }
            var left = range.length
            while left > 0 {
                try tar.read(into: &chunk, count: Int(min(left, 1 << 16)))
                guard !chunk.isEmpty else { throw SandboxError(.invalidRequest, "layer \(name): sparse member \(entry.path) holds less data than its map says") }
                try charge(Int64(chunk.count), &summary)
                try Syscall.writeAll(fd, chunk, entry.path)
                left -= Int64(chunk.count)
            }
        }
        guard ftruncate(fd, off_t(realSize)) == 0 else { throw fail("sizing", entry.path) }
    }

    // MARK: - Paths

    /// A member's path as components below the layer's root: absolute paths and `..` are refused.
    static func components(_ path: String, layer: String) throws(SandboxError) -> [String] {
        if path.hasPrefix("/") {
            throw SandboxError(.invalidRequest, "layer \(layer): member \(path) has an absolute path; a layer's paths are relative to its root")
        }
        let parts = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init).filter { $0 != "." }
        if parts.contains("..") {
            throw SandboxError(.invalidRequest, "layer \(layer): member \(path) has a '..' component, which would leave the layer's root")
        }
        return parts
    }

    /// Opens `parts` below `base` one directory at a time, never following a symlink; missing
    /// directories are made (0755) when `create`.
    func openDirectory(_ base: Int32, _ parts: [String], create: Bool, member: String) throws(SandboxError) -> Int32 {
        var current = dup(base)
        guard current >= 0 else { throw Syscall.error("dup", errno: errno) }
        for part in parts {
            var next = openat(current, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if next < 0 && errno == ENOENT && create {
                if mkdirat(current, part, 0o755) != 0 && errno != EEXIST {
                    let e = errno
                    close(current)
                    throw Syscall.error("layer \(name): making the directory \(part) of \(member)", errno: e)
                }
                next = openat(current, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            }
            let e = errno
            close(current)
            guard next >= 0 else {
                if e == ELOOP || e == ENOTDIR {
                    throw SandboxError(.invalidRequest, "layer \(name): member \(member) goes through \(part), which is a symlink or a file, not a directory")
                }
                throw Syscall.error("layer \(name): opening \(part) of \(member)", errno: e)
            }
            current = next
        }
        return current
    }

    // MARK: - Members

    private func whiteout(_ parent: Int32, _ leaf: String, member: String) throws(SandboxError) {
        if leaf == ".wh..wh..opq" {
            if let e = ExtendedAttributes.set(fd: parent, name: "trusted.overlay.opaque", value: Array("y".utf8)) {
                throw Syscall.error("layer \(name): marking the directory of \(member) opaque", errno: e)
            }
            return
        }
        let hidden = String(leaf.dropFirst(4))
        guard !hidden.isEmpty, hidden != ".", hidden != ".." else {
            throw SandboxError(.invalidRequest, "layer \(name): whiteout \(member) names no file")
        }
        try removeExisting(parent, hidden, member: member)
        guard mknodat(parent, hidden, S_IFCHR | 0o000, 0) == 0 else { throw fail("making the whiteout", member) }
    }

    private func makeDirectory(_ parent: Int32, _ leaf: String, _ entry: TarEntry) throws(SandboxError) {
        var st = stat()
        if fstatat(parent, leaf, &st, AT_SYMLINK_NOFOLLOW) == 0, (st.st_mode & S_IFMT) != S_IFDIR {
            try removeExisting(parent, leaf, member: entry.path)
        }
        if mkdirat(parent, leaf, 0o700) != 0 && errno != EEXIST { throw fail("making the directory", entry.path) }
        let fd = openat(parent, leaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw fail("opening the directory", entry.path) }
        defer { close(fd) }
        try setOwnerAndMode(fd: fd, entry)
    }

    private func hardLink(_ rootFD: Int32, _ parent: Int32, _ leaf: String, _ entry: TarEntry) throws(SandboxError) {
        let target = try Self.components(entry.linkTarget, layer: name)
        guard let targetLeaf = target.last else { throw SandboxError(.invalidRequest, "layer \(name): hard link \(entry.path) has no target") }
        if let dir = try? openDirectory(rootFD, Array(target.dropLast()), create: false, member: entry.path) {
            defer { close(dir) }
            var st = stat()
            if fstatat(dir, targetLeaf, &st, AT_SYMLINK_NOFOLLOW) == 0 {
                guard linkat(dir, targetLeaf, parent, leaf, 0) == 0 else { throw fail("making the hard link", entry.path) }
                return
            }
        }
        // The target is in a layer below: this layer gets a copy (overlayfs cannot link across layers).
        for lower in lowers {
            let lowerFD = open(lower, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard lowerFD >= 0 else { continue }
            defer { close(lowerFD) }
            guard let dir = try? openDirectory(lowerFD, Array(target.dropLast()), create: false, member: entry.path) else { continue }
            defer { close(dir) }
            let source = openat(dir, targetLeaf, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
            guard source >= 0 else { continue }
            defer { close(source) }
            var st = stat()
            guard fstat(source, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { continue }
            let copy = openat(parent, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard copy >= 0 else { throw fail("copying the hard link's target to", entry.path) }
            defer { close(copy) }
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let n = buffer.withUnsafeMutableBytes { Glibc.read(source, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                guard n >= 0 else { throw fail("reading the hard link's target for", entry.path) }
                if n == 0 { break }
                try Syscall.writeAll(copy, Array(buffer[0..<n]), entry.path)
            }
            _ = fchown(copy, st.st_uid, st.st_gid)
            _ = fchmod(copy, st.st_mode & 0o7777)
            return
        }
        throw SandboxError(.invalidRequest, "layer \(name): hard link \(entry.path) points at \(entry.linkTarget), which neither this layer nor a layer below has")
    }

    /// Removes whatever `leaf` is in `parent` (a directory with its whole content), never following a symlink.
    private func removeExisting(_ parent: Int32, _ leaf: String, member: String) throws(SandboxError) {
        var st = stat()
        guard fstatat(parent, leaf, &st, AT_SYMLINK_NOFOLLOW) == 0 else { return }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            let dir = openat(parent, leaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard dir >= 0 else { throw fail("opening", member) }
            try Self.emptyDirectory(dir, member: member)
            guard unlinkat(parent, leaf, AT_REMOVEDIR) == 0 else { throw fail("replacing the directory", member) }
        } else if unlinkat(parent, leaf, 0) != 0 {
            throw fail("replacing", member)
        }
    }

    /// Removes everything in the directory `dir` (and closes it).
    static func emptyDirectory(_ dir: Int32, member: String) throws(SandboxError) {
        defer { close(dir) }
        for name in try DirectoryFD.entries(of: dir).map({ String(decoding: $0, as: UTF8.self) }) {
            var st = stat()
            guard fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
            if (st.st_mode & S_IFMT) == S_IFDIR {
                let sub = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard sub >= 0 else { throw Syscall.error("opening \(name) under \(member)", errno: errno) }
                try emptyDirectory(sub, member: member)
                guard unlinkat(dir, name, AT_REMOVEDIR) == 0 else { throw Syscall.error("removing \(name) under \(member)", errno: errno) }
            } else if unlinkat(dir, name, 0) != 0 {
                throw Syscall.error("removing \(name) under \(member)", errno: errno)
            }
        }
    }

    private func setOwnerAndMode(fd: Int32, _ entry: TarEntry) throws(SandboxError) {
        // chown first: it clears set-user-ID bits the mode then sets again.
        guard fchown(fd, entry.uid, entry.gid) == 0, fchmod(fd, entry.mode) == 0 else { throw fail("setting the owner and mode of", entry.path) }
    }

    private func setOwnerAndMode(_ parent: Int32, _ leaf: String, _ entry: TarEntry) throws(SandboxError) {
        guard fchownat(parent, leaf, entry.uid, entry.gid, AT_SYMLINK_NOFOLLOW) == 0, fchmodat(parent, leaf, entry.mode, 0) == 0 else {
            throw fail("setting the owner and mode of", entry.path)
        }
    }

    private func fail(_ doing: String, _ member: String) -> SandboxError {
        Syscall.error("layer \(name): \(doing) \(member)", errno: errno)
    }
}
