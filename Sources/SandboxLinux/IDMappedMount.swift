import CSandboxLinux
import SandboxCore

#if canImport(Glibc)
import Glibc
#endif

/// Idmapped mounts: a directory whose files show with their ids shifted into a sandbox's range, so
/// an image's root-owned files are root's inside a sandbox whose root is an unprivileged host id.
public enum IDMappedMount {
    /// A user namespace mapping ids 0..<size to host ids hostBase..<hostBase+size, as an open
    /// descriptor (the caller closes it).
    public static func userNamespace(hostBase: UInt32, size: UInt32) throws(SandboxError) -> Int32 {
        let fd = sbx_userns_fd(hostBase, size)
        guard fd >= 0 else { throw Syscall.error("making a user namespace for the ids at \(hostBase)", errno: errno) }
        return fd
    }

    /// Mounts a read-only, nosuid, nodev view of `source` at `target` (an existing directory) with
    /// the ids of the user namespace `userNamespace`.
    public static func mount(_ source: String, at target: String, userNamespace: Int32) throws(SandboxError) {
        guard sbx_mount_idmapped(source, target, userNamespace) == 0 else {
            throw SandboxError(.setupFailed, "an idmapped mount of \(source) at \(target) failed: \(String(cString: strerror(errno))) (image templates need a kernel with idmapped mounts, Linux 5.19 or later)")
        }
    }
}
