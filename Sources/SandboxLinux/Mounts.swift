import Foundation
import SandboxCore

#if canImport(Glibc)
import Glibc
#endif

/// Host-side mounts sandboxer makes itself (the size-capped workspace tmpfs).
public enum Mounts {
    /// Mounts a tmpfs of `sizeBytes` at `path`, owned by uid/gid, `nosuid,nodev`.
    public static func mountTmpfs(at path: String, sizeBytes: Int64, uid: UInt32, gid: UInt32, mode: String = "0755") throws(SandboxError) {
        try SysFile.makeDirectory(path)
        let opts = "size=\(sizeBytes),mode=\(mode),uid=\(uid),gid=\(gid)"
        let rc = mount("tmpfs", path, "tmpfs", UInt(MS_NOSUID | MS_NODEV), opts)
        if rc != 0 {
            throw SandboxError(.setupFailed, "mount tmpfs at \(path): \(String(cString: strerror(errno))); sandboxer must run as root")
        }
    }

    /// Lazily unmounts `path` (MNT_DETACH), ignoring "not mounted".
    public static func unmount(_ path: String) {
        _ = umount2(path, Int32(MNT_DETACH))
    }

    /// Mount points (from /proc/self/mountinfo) at or below `prefix`, deepest first.
    public static func mountPoints(under prefix: String) -> [String] {
        let info = SysFile.read("/proc/self/mountinfo") ?? ""
        var out: [String] = []
        for line in info.split(separator: "\n") {
            let parts = line.split(separator: " ")
            guard parts.count > 4 else { continue }
            let mp = String(parts[4]).replacingOccurrences(of: "\\040", with: " ")
            if mp == prefix || mp.hasPrefix(prefix.hasSuffix("/") ? prefix : prefix + "/") { out.append(mp) }
        }
        return out.sorted { $0.count > $1.count }
    }
}

/// Copies trees between the host and a workspace without ever following a symlink: links are
/// recreated as links, devices/fifos/sockets are skipped, so a sandbox cannot make the host read or
/// overwrite files outside the tree.
public enum FileTree {
    /// Copies the contents of `source` into `destination` (which must exist), setting the owner of
    /// everything created to uid/gid.
    public static func copyContents(of source: String, into destination: String, uid: UInt32, gid: UInt32) throws(SandboxError) {
        let entries: [String]
        do { entries = try FileManager.default.contentsOfDirectory(atPath: source) } catch {
            throw SandboxError(.invalidRequest, "cannot read directory \(source): \(error.localizedDescription)")
        }
        for name in entries {
            try copyEntry(source + "/" + name, to: destination + "/" + name, uid: uid, gid: gid)
        }
    }

    static func copyEntry(_ src: String, to dst: String, uid: UInt32, gid: UInt32) throws(SandboxError) {
        var st = stat()
        guard lstat(src, &st) == 0 else { return }
        switch st.st_mode & S_IFMT {
        case S_IFDIR:
            var dt = stat()
            if lstat(dst, &dt) == 0 && (dt.st_mode & S_IFMT) != S_IFDIR { unlink(dst) }
            if mkdir(dst, st.st_mode & 0o7777 & ~0o6000) != 0 && errno != EEXIST {
                throw Syscall.error("mkdir \(dst)", errno: errno)
            }
            lchown(dst, uid, gid)
            try copyContents(of: src, into: dst, uid: uid, gid: gid)
        case S_IFREG:
            try copyFile(src, to: dst, mode: st.st_mode & 0o777)
            lchown(dst, uid, gid)
        case S_IFLNK:
            var buf = [Int8](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = readlink(src, &buf, Int(PATH_MAX))
            guard n >= 0 else { return }
            let target = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            SysFile.removeTree(dst)
            if symlink(target, dst) == 0 { lchown(dst, uid, gid) }
        default:
            return  // devices, fifos, sockets are never copied
        }
    }

    static func copyFile(_ src: String, to dst: String, mode: mode_t) throws(SandboxError) {
        let inFd = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        if inFd < 0 { throw Syscall.error("open \(src)", errno: errno) }
        defer { close(inFd) }
        var dt = stat()
        if lstat(dst, &dt) == 0 && (dt.st_mode & S_IFMT) != S_IFREG { SysFile.removeTree(dst) }
        let outFd = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode)
        if outFd < 0 { throw Syscall.error("create \(dst)", errno: errno) }
        defer { close(outFd) }
        var buf = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buf.withUnsafeMutableBytes { read(inFd, $0.baseAddress, 1 << 16) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw Syscall.error("read \(src)", errno: errno) }
            if n == 0 { break }
            var off = 0
            while off < n {
                let w = buf.withUnsafeBytes { write(outFd, $0.baseAddress! + off, n - off) }
                if w < 0 {
                    if errno == EINTR { continue }
                    throw Syscall.error("write \(dst)", errno: errno)
                }
                off += w
            }
        }
        fchmod(outFd, mode)
    }
}
