import Foundation
import SandboxCore

#if canImport(Glibc)
import Glibc
#endif

/// Host-side mounts sandboxer makes itself (the size-capped workspace tmpfs).
public enum Mounts {
    /// Mounts a tmpfs of `sizeBytes` at `path`, owned by uid/gid, `nosuid,nodev`.
    /// `maxEntries` caps the files and directories it can hold (`nr_inodes`).
    public static func mountTmpfs(
        at path: String, sizeBytes: Int64, maxEntries: Int? = nil, uid: UInt32, gid: UInt32, mode: String = "0755"
    ) throws(SandboxError) {
        try SysFile.makeDirectory(path)
        var opts = "size=\(sizeBytes),mode=\(mode),uid=\(uid),gid=\(gid)"
        if let maxEntries { opts += ",nr_inodes=\(maxEntries + 1)" }
        let rc = mount("tmpfs", path, "tmpfs", UInt(MS_NOSUID | MS_NODEV), opts)
        if rc != 0 {
            throw SandboxError(.setupFailed, "mount tmpfs at \(path): \(String(cString: strerror(errno))); sandboxer must run as root")
        }
    }

    /// Binds the directory `source` at `path` (`nosuid,nodev`; made when missing).
    public static func bind(_ source: String, at path: String) throws(SandboxError) {
        try SysFile.makeDirectory(path)
        guard mount(source, path, nil, UInt(MS_BIND), nil) == 0 else {
            throw SandboxError(.setupFailed, "binding \(source) at \(path): \(String(cString: strerror(errno)))")
        }
        _ = mount(nil, path, nil, UInt(MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV), nil)
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

    /// The directories mounted somewhere (a bind's or an idmapped mount's source: the root field of
    /// /proc/self/mountinfo, a path inside its file system).
    public static func mountedRoots() -> Set<String> {
        let info = SysFile.read("/proc/self/mountinfo") ?? ""
        var out: Set<String> = []
        for line in info.split(separator: "\n") {
            let parts = line.split(separator: " ")
            guard parts.count > 4 else { continue }
            out.insert(String(parts[3]).replacingOccurrences(of: "\\040", with: " "))
        }
        return out
    }
}
