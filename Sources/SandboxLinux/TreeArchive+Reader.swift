import Foundation
import SandboxCore

#if canImport(Glibc)
import Glibc
#endif

/// Reads a ``TreeArchive`` file (buffered) and replays a section into a ``TreeSink``, checking
/// everything it reads: a name is one path component (no `/`, not `.` or `..`, at most 255
/// bytes), lengths and counts are bounded, runs lie inside their file's size and a hard link
/// names an earlier file. A damaged or truncated file throws, naming it.
struct ArchiveReader {
    let fd: Int32
    let path: String
    private var buffer = [UInt8](repeating: 0, count: 1 << 18)
    private var start = 0, end = 0

    /// Bounds a sound archive stays within.
    static let maxName = 255, maxTarget = Int(PATH_MAX), maxXattrs = 4096, maxXattrValue = 1 << 16, maxDepth = 4096

    init(fd: Int32, path: String) { (self.fd, self.path) = (fd, path) }

    func damaged(_ why: String) -> SandboxError {
        SandboxError(.system, "\(path) is damaged (\(why)); the files it kept cannot be restored")
    }

    mutating func seek(_ offset: UInt64) throws(SandboxError) {
        guard offset <= UInt64(Int64.max), lseek(fd, off_t(offset), SEEK_SET) >= 0 else { throw damaged("a section offset past its end") }
        (start, end) = (0, 0)
    }

    /// Makes at least `n` (≤ the buffer's size) bytes available.
    private mutating func fill(_ n: Int) throws(SandboxError) {
        if end - start >= n { return }
        if start > 0 {
            buffer.withUnsafeMutableBytes { b in _ = memmove(b.baseAddress!, b.baseAddress! + start, end - start) }
            (start, end) = (0, end - start)
        }
        while end < n {
            let r = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + end, $0.count - end) }
            if r < 0 && errno == EINTR { continue }
            if r < 0 { throw Syscall.error("reading \(path)", errno: errno) }
            if r == 0 { throw damaged("it ends early") }
            end += r
        }
    }

    mutating func u8() throws(SandboxError) -> UInt8 {
        try fill(1)
        defer { start += 1 }
        return buffer[start]
    }

    private mutating func integer<T: FixedWidthInteger>(_: T.Type) throws(SandboxError) -> T {
        let n = MemoryLayout<T>.size
        try fill(n)
        var v: T = 0
        withUnsafeMutableBytes(of: &v) { d in buffer.withUnsafeBytes { s in d.copyMemory(from: UnsafeRawBufferPointer(rebasing: s[start..<start + n])) } }
        start += n
        return T(littleEndian: v)
    }

    mutating func u16() throws(SandboxError) -> UInt16 { try integer(UInt16.self) }
    mutating func u32() throws(SandboxError) -> UInt32 { try integer(UInt32.self) }
    mutating func u64() throws(SandboxError) -> UInt64 { try integer(UInt64.self) }

    /// `n` bytes (n ≤ the buffer's size).
    mutating func bytes(_ n: Int) throws(SandboxError) -> [UInt8] {
        try fill(n)
        defer { start += n }
        return Array(buffer[start..<start + n])
    }

    mutating func blob(max: Int, _ what: String) throws(SandboxError) -> [UInt8] {
        let n = Int(try u32())
        guard n <= max else { throw damaged("\(what) of \(n) bytes") }
        return try bytes(n)
    }

    mutating func name() throws(SandboxError) -> [UInt8] {
        let n = try blob(max: Self.maxName, "a name")
        guard !n.isEmpty, !n.contains(0x2F), !n.contains(0), n != [0x2E], n != [0x2E, 0x2E] else {
            throw damaged("an entry named \(Names.display(n))")
        }
        return n
    }

    mutating func meta() throws(SandboxError) -> TreeMeta {
        let mode = try u32(), uid = try u32(), gid = try u32(), rdev = try u64(), size = Int64(bitPattern: try u64())
        let atime = (Int64(bitPattern: try u64()), Int64(bitPattern: try u64()))
        let mtime = (Int64(bitPattern: try u64()), Int64(bitPattern: try u64()))
        let count = Int(try u32())
        guard count <= Self.maxXattrs, size >= 0 else { throw damaged("an entry's size or attribute count") }
        var xattrs: [TreeMeta.Xattr] = []
        for _ in 0..<count {
            let n = try blob(max: Self.maxName, "an attribute name"), v = try blob(max: Self.maxXattrValue, "an attribute value")
            guard !n.isEmpty, !n.contains(0) else { throw damaged("an attribute name") }
            xattrs.append(.init(name: n, value: v))
        }
        return TreeMeta(mode: mode, uid: uid, gid: gid, rdev: rdev, size: size, atime: atime, mtime: mtime, xattrs: xattrs)
    }

    /// The section table at the file's start.
    mutating func table() throws(SandboxError) -> [(name: String, offset: UInt64)] {
        try seek(0)
        guard try bytes(TreeArchive.magic.count) == TreeArchive.magic else { throw damaged("not a sandboxer tree archive") }
        let count = Int(try u32())
        guard count <= 64 else { throw damaged("\(count) sections") }
        var out: [(String, UInt64)] = []
        for _ in 0..<count {
            let n = try bytes(Int(try u16()))
            out.append((String(decoding: n, as: UTF8.self), try u64()))
        }
        return out
    }

    /// Replays the section at the current position into `sink`, up to and including its root's end.
    mutating func replay<S: TreeSink>(into sink: inout S) throws(SandboxError) {
        var depth = 0, linkable = 0
        while true {
            switch try u8() {
            case 0x64:  // d
                guard depth < Self.maxDepth else { throw damaged("directories nested deeper than \(Self.maxDepth)") }
                try sink.enterDirectory(try name())
                depth += 1
            case 0x65:  // e
                try sink.leaveDirectory(try meta())
                if depth == 0 { return }
                depth -= 1
            case 0x66:  // f
                let n = try name(), m = try meta(), isLinkable = try u8() != 0
                guard m.type == UInt32(S_IFREG) else { throw damaged("a file entry of another type") }
                try sink.file(n, m, linkable: isLinkable) { (body) throws(SandboxError) in try runs(size: m.size, body) }
                if isLinkable { linkable += 1 }
            case 0x68:  // h
                let n = try name(), index = try u64()
                guard index < UInt64(linkable) else { throw damaged("a hard link to file \(index) of \(linkable)") }
                try sink.hardLink(n, to: Int(index))
            case 0x6C:  // l
                let n = try name(), target = try blob(max: Self.maxTarget, "a symlink target"), m = try meta()
                guard !target.isEmpty, !target.contains(0), m.type == UInt32(S_IFLNK) else { throw damaged("a symlink entry") }
                try sink.symlink(n, target: target, m)
            case 0x6E:  // n
                let n = try name(), m = try meta()
                guard m.isKeptNode else { throw damaged("a device node") }
                try sink.node(n, m)
            case let kind:
                throw damaged("an entry of unknown kind \(kind)")
            }
        }
    }

    /// A file's data runs, each handed to `body` in chunks of at most the buffer's size.
    private mutating func runs(size: Int64, _ body: (Int64, UnsafeRawBufferPointer) throws(SandboxError) -> Void) throws(SandboxError) {
        var last: Int64 = 0
        while true {
            let offset = try u64()
            if offset == UInt64.max { return }
            let length = try u64()
            guard offset <= UInt64(size), length <= UInt64(size) - offset, Int64(offset) >= last else { throw damaged("a data run outside its file") }
            var pos = Int64(offset), left = Int(length)
            while left > 0 {
                let n = min(left, buffer.count)
                try fill(n)
                let from = start
                try buffer.withUnsafeBytes { b in Result { () throws(SandboxError) in try body(pos, UnsafeRawBufferPointer(rebasing: b[from..<from + n])) } }.get()
                (start, pos, left) = (start + n, pos + Int64(n), left - n)
            }
            last = pos
        }
    }
}
