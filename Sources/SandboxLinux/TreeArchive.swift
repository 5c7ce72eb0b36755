import Foundation
import SandboxCore

#if canImport(Glibc)
import Glibc
#endif

/// Directory trees kept in one file: what a hibernated sandbox's upper directory and workspace
/// become on disk. Writing one file instead of a tree spares the disk's filesystem a directory,
/// inode and journal entry per entry (40–60 µs per `mkdir` on ext4), and waking reads it back
/// into memory-backed directories and unlinks one file. Keeps what ``TreeCopy`` keeps: owners,
/// modes, times, every extended attribute, hard links, holes, symlinks, FIFOs, whiteouts.
///
/// Format (little-endian; internal to sandboxer, versioned by its magic): `SBXTREE1`, a u32
/// section count, per section a u16 name length, the name and the u64 offset of its records.
/// A section is a depth-first walk (see ``TreeSink``): `d` name (enter a directory), `e` meta
/// (leave one; the root's ends the section), `f` name meta linkable(u8) runs, `h` name u64 index,
/// `l` name target meta, `n` name meta. A name or target is a u32 length and its bytes; runs are
/// (u64 offset, u64 length, bytes) ending with offset `UInt64.max`. Everything read is checked
/// (names are single components, lengths bounded, runs inside the file's size): a damaged file is
/// an error naming it, never a write outside the target.
public enum TreeArchive {
    static let magic = Array("SBXTREE1".utf8)

    /// Writes the trees `sections` (name → directory) into a new file at `path` (mode 0600).
    /// A full disk throws `limit_exceeded`, so does a tree nested deeper than ``TreeWalk/maxDepth``;
    /// a pack that throws leaves no file. Blocks: run it on the blocking pool.
    public static func pack(_ sections: [(name: String, directory: String)], to path: String) throws(SandboxError) {
        BlockingCheck.check("TreeArchive.pack")
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Syscall.error("creating \(path)", errno: errno) }
        defer { close(fd) }
        do { try write(sections, fd: fd, path: path) } catch {
            unlink(path)
            throw error
        }
    }

    private static func write(_ sections: [(name: String, directory: String)], fd: Int32, path: String) throws(SandboxError) {
        var out = ArchiveWriter(fd: fd, path: path)
        out.bytes(magic)
        out.u32(UInt32(sections.count))
        var slots: [Int64] = []
        for s in sections {
            out.u16(UInt16(s.name.utf8.count))
            out.bytes(Array(s.name.utf8))
            slots.append(out.position)
            out.u64(0)
        }
        var offsets: [UInt64] = []
        for s in sections {
            let src = open(s.directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard src >= 0 else { throw Syscall.error("opening \(s.directory)", errno: errno) }
            defer { close(src) }
            offsets.append(UInt64(out.position))
            var walk = TreeWalk(sourceRoot: s.directory)
            try walk.walk(root: src, into: &out)
        }
        try out.flush()
        for (slot, offset) in zip(slots, offsets) {
            var le = offset.littleEndian
            guard pwrite(fd, &le, 8, off_t(slot)) == 8 else { throw out.failure("writing", errno) }
        }
    }

    /// The section names in the file at `path`.
    public static func sections(in path: String) throws(SandboxError) -> [String] {
        try withReader(path) { (r) throws(SandboxError) in try r.table().map(\.name) }
    }

    /// Writes section `section` of the file at `path` below `target` (made when missing; it takes
    /// the tree root's owner, mode, times and extended attributes). False when the file has no such
    /// section. A full target throws `limit_exceeded`, a damaged file `system`. Blocks.
    @discardableResult
    public static func unpack(section: String, from path: String, into target: String) throws(SandboxError) -> Bool {
        BlockingCheck.check("TreeArchive.unpack")
        return try withReader(path) { (r) throws(SandboxError) -> Bool in
            guard let entry = try r.table().first(where: { $0.name == section }) else { return false }
            try r.seek(entry.offset)
            try TreeCopy.into(target, idBase: nil) { (sink: inout DirectorySink) throws(SandboxError) in try r.replay(into: &sink) }
            return true
        }
    }

    static func withReader<T>(_ path: String, _ body: (inout ArchiveReader) throws(SandboxError) -> T) throws(SandboxError) -> T {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw Syscall.error("opening \(path)", errno: errno) }
        defer { close(fd) }
        var r = ArchiveReader(fd: fd, path: path)
        return try body(&r)
    }
}

/// The ``TreeSink`` that serializes a walk into a ``TreeArchive`` file (buffered writes).
struct ArchiveWriter: TreeSink {
    let fd: Int32
    let path: String
    private var buffer: [UInt8] = []
    /// Bytes written to the file so far plus those buffered.
    private(set) var position: Int64 = 0
    private var error: Int32 = 0

    init(fd: Int32, path: String) {
        (self.fd, self.path) = (fd, path)
        buffer.reserveCapacity(1 << 18)
    }

    func failure(_ what: String, _ e: Int32) -> SandboxError {
        if e == ENOSPC || e == EDQUOT { return SandboxError(.limitExceeded, "\(what) \(path): no space left on its disk") }
        return Syscall.error("\(what) \(path)", errno: e)
    }

    mutating func bytes(_ b: some Collection<UInt8>) {
        buffer.append(contentsOf: b)
        position += Int64(b.count)
        if buffer.count >= 1 << 18 { try? flush() }
    }

    mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { bytes($0) } }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes($0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes($0) } }
    mutating func name(_ n: [UInt8]) { u32(UInt32(n.count)); bytes(n) }

    /// Writes what is buffered; the first failure sticks and is thrown here and by every later call.
    mutating func flush() throws(SandboxError) {
        if error == 0 {
            var done = 0
            while done < buffer.count {
                let w = buffer.withUnsafeBytes { write(fd, $0.baseAddress! + done, buffer.count - done) }
                if w < 0 && errno == EINTR { continue }
                if w < 0 { error = errno; break }
                done += w
            }
            buffer.removeAll(keepingCapacity: true)
        }
        if error != 0 { throw failure("writing", error) }
    }

    mutating func meta(_ m: TreeMeta) {
        u32(m.mode); u32(m.uid); u32(m.gid); u64(m.rdev); u64(UInt64(bitPattern: m.size))
        u64(UInt64(bitPattern: m.atime.sec)); u64(UInt64(bitPattern: m.atime.nsec))
        u64(UInt64(bitPattern: m.mtime.sec)); u64(UInt64(bitPattern: m.mtime.nsec))
        u32(UInt32(m.xattrs.count))
        for x in m.xattrs { name(x.name); name(x.value) }
    }

    mutating func enterDirectory(_ n: [UInt8]) throws(SandboxError) { bytes([0x64]); name(n) }

    mutating func leaveDirectory(_ m: TreeMeta) throws(SandboxError) {
        bytes([0x65]); meta(m)
        if error != 0 { throw failure("writing", error) }
    }

    mutating func file(_ n: [UInt8], _ m: TreeMeta, linkable: Bool,
                       runs: (_ body: (Int64, UnsafeRawBufferPointer) throws(SandboxError) -> Void) throws(SandboxError) -> Void) throws(SandboxError) {
        bytes([0x66]); name(n); meta(m); bytes([linkable ? 1 : 0])
        try runs { (offset, chunk) throws(SandboxError) in
            u64(UInt64(offset)); u64(UInt64(chunk.count)); bytes(chunk)
        }
        u64(UInt64.max)
        if error != 0 { throw failure("writing", error) }
    }

    mutating func hardLink(_ n: [UInt8], to index: Int) throws(SandboxError) { bytes([0x68]); name(n); u64(UInt64(index)) }
    mutating func symlink(_ n: [UInt8], target: [UInt8], _ m: TreeMeta) throws(SandboxError) { bytes([0x6C]); name(n); name(target); meta(m) }
    mutating func node(_ n: [UInt8], _ m: TreeMeta) throws(SandboxError) { bytes([0x6E]); name(n); meta(m) }
}
