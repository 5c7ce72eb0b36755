import Foundation
import SandboxCore
import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

/// Writes a directory in overlayfs's format (an unpacked layer, a sandbox's upper directory) as an
/// OCI layer tar: names sorted (the same tree gives the same bytes), owners and modes kept, hard
/// links as links, overlayfs whiteouts (character device 0/0) as `.wh.NAME` and an opaque directory
/// as `DIR/.wh..wh..opq`, long names in pax headers. Symlinks are written, never followed; sockets
/// and other devices are left out. `time`, when given, replaces every modification time (a
/// reproducible layer); `idBase`, when given, is the host id of a user namespace's id 0: owners
/// are written as the namespace sees them (a sandbox's upper directory as image ids; an id outside
/// the 65536-id range as 65534, the overflow id the sandbox saw); `sink` receives every byte.
public struct TarWriter {
    /// When a path of ``omit`` is left out: an empty file, or a directory everything in which is
    /// left out too — and, when the image below has it (`image` is its mode, uid and gid), only
    /// while it still has that mode and owner. (The mount points a sandbox's root gets are not a
    /// build step's work.)
    public struct Omittable: Sendable, Equatable {
        public var image: (mode: UInt32, uid: UInt32, gid: UInt32)?
        public init(image: (mode: UInt32, uid: UInt32, gid: UInt32)?) { self.image = image }
        public static func == (a: Omittable, b: Omittable) -> Bool {
            a.image?.mode == b.image?.mode && a.image?.uid == b.image?.uid && a.image?.gid == b.image?.gid
        }
    }

    public var time: Int64?
    public var idBase: UInt32?
    /// Paths (relative, no leading slash) left out when they carry nothing of their own (``Omittable``).
    public var omit: [String: Omittable] = [:]
    private let sink: ([UInt8]) throws(SandboxError) -> Void

    public init(time: Int64? = nil, idBase: UInt32? = nil, omit: [String: Omittable] = [:], sink: @escaping ([UInt8]) throws(SandboxError) -> Void) {
        self.time = time
        self.idBase = idBase
        self.omit = omit
        self.sink = sink
    }

    /// Writes the tree under `directory` and the archive's end.
    public func write(directory: String) throws(SandboxError) {
        var links: [String: String] = [:]
        try append(directory: directory, links: &links)
        try finish()
    }

    /// Writes the tree under `directory` as members below `prefix` (`""`: at the archive's root;
    /// `"workspace"`: the directory itself as `workspace/`, its content below), leaving out the
    /// top-level names in `skipping`. `links` carries hard links across calls. ``finish()`` ends the archive.
    public func append(directory: String, under prefix: String = "", skipping: Set<String> = [], links: inout [String: String]) throws(SandboxError) {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw Syscall.error("opening \(directory)", errno: errno) }
        defer { close(fd) }
        var path = ""
        if !prefix.isEmpty {
            var st = stat()
            guard fstat(fd, &st) == 0 else { throw Syscall.error("stat \(directory)", errno: errno) }
            path = prefix + "/"
            try header(path, type: "5", st: st, size: 0)
        }
        try walk(fd, prefix: path, skipping: skipping, links: &links)
    }

    /// The archive's end (two zero blocks).
    public func finish() throws(SandboxError) {
        try sink([UInt8](repeating: 0, count: 1024))
    }

    private func walk(_ dir: Int32, prefix: String, skipping: Set<String> = [], links: inout [String: String]) throws(SandboxError) {
        for name in try Self.names(dir) where !skipping.contains(name) {
            var st = stat()
            guard fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { throw Syscall.error("stat \(prefix)\(name)", errno: errno) }
            let path = prefix + name
            if omittable(dir, name, path, st) { continue }
            let type = st.st_mode & S_IFMT
            if type == S_IFCHR && st.st_rdev == 0 {
                try header(prefix + ".wh." + name, type: "0", st: st, size: 0, mode: 0o644)
                continue
            }
            switch type {
            case S_IFDIR:
                try header(path + "/", type: "5", st: st, size: 0)
                let sub = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard sub >= 0 else { throw Syscall.error("opening \(path)", errno: errno) }
                defer { close(sub) }
                if ExtendedAttributes.get(fd: sub, name: "trusted.overlay.opaque") == Array("y".utf8) {
                    try header(path + "/.wh..wh..opq", type: "0", st: st, size: 0, mode: 0o644)
                }
                try walk(sub, prefix: path + "/", links: &links)
            case S_IFREG:
                let key = "\(st.st_dev):\(st.st_ino)"
                if st.st_nlink > 1, let first = links[key] {
                    try header(path, type: "1", st: st, size: 0, link: first)
                    continue
                }
                if st.st_nlink > 1 { links[key] = path }
                try file(dir, name, st: st, path: path)
            case S_IFLNK:
                var target = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
                let n = readlinkat(dir, name, &target, target.count - 1)
                guard n >= 0 else { throw Syscall.error("readlink \(path)", errno: errno) }
                try header(path, type: "2", st: st, size: 0, link: String(decoding: target[0..<n], as: UTF8.self))
            case S_IFIFO:
                try header(path, type: "6", st: st, size: 0)
            default:
                continue  // sockets and device nodes are not image content
            }
        }
    }

    /// A regular file: whole, or (when it has holes) as a pax sparse 1.0 member whose content is
    /// the map of its data ranges and their bytes only, so holes are neither read nor stored.
    private func file(_ dir: Int32, _ name: String, st: stat, path: String) throws(SandboxError) {
        let fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw Syscall.error("opening \(path)", errno: errno) }
        defer { close(fd) }
        let size = Int64(st.st_size)
        guard Int64(st.st_blocks) * 512 < size, let map = TarSparseMap.of(fd: fd, size: size) else {
            try header(path, type: "0", st: st, size: size)
            try content(fd, [(0, size)], path: path, total: size)
            return
        }
        let mapBytes = map.encoded()
        let dataBytes = map.ranges.reduce(Int64(0)) { $0 + $1.length }
        let sparseName = ((path as NSString).deletingLastPathComponent as NSString).appendingPathComponent("GNUSparseFile.0/" + name)
        try header(sparseName, type: "0", st: st, size: Int64(mapBytes.count) + dataBytes, extra: [
            ("GNU.sparse.major", "1"), ("GNU.sparse.minor", "0"), ("GNU.sparse.name", path), ("GNU.sparse.realsize", String(size)),
        ])
        try sink(mapBytes)
        try content(fd, map.ranges.map { ($0.offset, $0.length) }, path: path, total: dataBytes)
    }

    /// Writes the bytes of `ranges` of `fd` and pads the member (`total` bytes) to 512.
    private func content(_ fd: Int32, _ ranges: [(Int64, Int64)], path: String, total: Int64) throws(SandboxError) {
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        for (offset, length) in ranges {
            var done: Int64 = 0
            while done < length {
                let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, Int(min(Int64($0.count), length - done)), off_t(offset + done)) }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw SandboxError(.system, "\(path) changed while it was written to a layer (it shrank)") }
                try sink(Array(buffer[0..<n]))
                done += Int64(n)
            }
        }
        let pad = Int((512 - total % 512) % 512)
        if pad > 0 { try sink([UInt8](repeating: 0, count: pad)) }
    }

    private func header(_ path: String, type: Character, st: stat, size: Int64, link: String = "", mode: UInt32? = nil,
                        extra: [(String, String)] = []) throws(SandboxError) {
        var pax: [(String, String)] = extra
        if path.utf8.count > 100 && !extra.contains(where: { $0.0 == "GNU.sparse.name" }) { pax.append(("path", path)) }
        if link.utf8.count > 100 { pax.append(("linkpath", link)) }
        if !pax.isEmpty {
            var body: [UInt8] = []
            for (k, v) in pax {
                let record = " \(k)=\(v)\n"
                var length = record.utf8.count + 1
                while "\(length)".utf8.count + record.utf8.count != length { length += 1 }
                body += Array("\(length)\(record)".utf8)
            }
            try sink(Self.block(name: "PaxHeader", type: "x", mode: 0o644, uid: 0, gid: 0, size: Int64(body.count), mtime: 0, link: ""))
            try sink(body + [UInt8](repeating: 0, count: (512 - body.count % 512) % 512))
        }
        try sink(Self.block(name: path, type: type, mode: mode ?? (UInt32(st.st_mode) & 0o7777), uid: mapped(st.st_uid), gid: mapped(st.st_gid), size: size,
                            mtime: time ?? Int64(st.st_mtim.tv_sec), link: link))
    }

    /// Whether `path` (entry `name` of `dir`) is left out (see ``Omittable``).
    private func omittable(_ dir: Int32, _ name: String, _ path: String, _ st: stat) -> Bool {
        guard let rule = omit[path] else { return false }
        switch st.st_mode & S_IFMT {
        case S_IFREG:
            return rule.image == nil && st.st_size == 0
        case S_IFDIR:
            if let image = rule.image {
                guard UInt32(st.st_mode) & 0o7777 == image.mode, mapped(st.st_uid) == image.uid, mapped(st.st_gid) == image.gid else { return false }
            }
            let sub = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard sub >= 0 else { return false }
            defer { close(sub) }
            guard ExtendedAttributes.get(fd: sub, name: "trusted.overlay.opaque") == nil, let names = try? Self.names(sub) else { return false }
            return names.allSatisfy { child in
                var cst = stat()
                return fstatat(sub, child, &cst, AT_SYMLINK_NOFOLLOW) == 0 && omittable(sub, child, path + "/" + child, cst)
            }
        default:
            return false
        }
    }

    /// An owner as written: as stored, or as the user namespace starting at ``idBase`` sees it.
    func mapped(_ id: UInt32) -> UInt32 {
        guard let base = idBase else { return id }
        return id >= base && id - base < 65536 ? id - base : 65534
    }

    /// One ustar header block (names longer than the field are cut; the pax header before it has them whole).
    static func block(name: String, type: Character, mode: UInt32, uid: UInt32, gid: UInt32, size: Int64, mtime: Int64, link: String) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 512)
        func put(_ bytes: [UInt8], _ at: Int, _ width: Int) {
            for (i, x) in bytes.prefix(width).enumerated() { b[at + i] = x }
        }
        func octal(_ v: Int64, _ at: Int, _ width: Int) {
            let text = String(v, radix: 8)
            put(Array((String(repeating: "0", count: max(0, width - 1 - text.count)) + text).utf8), at, width - 1)
        }
        put(Array(name.utf8), 0, 100)
        octal(Int64(mode), 100, 8)
        octal(Int64(uid), 108, 8)
        octal(Int64(gid), 116, 8)
        octal(size, 124, 12)
        octal(max(0, mtime), 136, 12)
        b[156] = type.asciiValue ?? UInt8(ascii: "0")
        put(Array(link.utf8), 157, 100)
        put(Array("ustar\0".utf8), 257, 6)
        put(Array("00".utf8), 263, 2)
        put(Array(repeating: UInt8(ascii: " "), count: 8), 148, 8)
        let sum = b.reduce(0) { $0 + Int64($1) }
        octal(sum, 148, 7)
        b[154] = 0
        b[155] = UInt8(ascii: " ")
        return b
    }

    /// The names in `dir`, sorted by their bytes.
    static func names(_ dir: Int32) throws(SandboxError) -> [String] {
        try DirectoryFD.entries(of: dir).sorted { $0.lexicographicallyPrecedes($1) }.map { String(decoding: $0, as: UTF8.self) }
    }
}
