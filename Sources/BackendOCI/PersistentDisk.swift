import Foundation
import SandboxCore
import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

/// The on-disk filesystem of a `persistence: persistent` sandbox: `<persistent>/<id>/workspace.img`
/// and (image templates) `upper.img`, sparse ext4 image files loop-mounted where an ephemeral
/// sandbox has its tmpfs mounts (the workspace; the overlay's `rw` directory). An image file's size
/// is the profile's workspace size (the upper directory's: `resources.disk`), so the limit holds as the tmpfs's did (ext4 refuses the write
/// past it, `workspace_files` caps its inodes); it survives a server restart and a host reboot, and
/// only the sandbox's end (delete, TTL) removes it. Mounted with `mount -o loop`, so the loop device
/// goes with the last unmount.
struct PersistentDisk: Sendable {
    let directory: String
    var workspaceImage: String { directory + "/workspace.img" }
    var upperImage: String { directory + "/upper.img" }

    /// Whether the sandbox's files are there (it was created persistent and has not ended).
    var exists: Bool { SysFile.exists(workspaceImage) }

    /// Mounts `image` at `path`, making it first (sparse, ext4, `bytes` usable, at most `files`
    /// inodes, its root owned by `uid:gid`) when it does not exist yet.
    static func mount(image: String, at path: String, bytes: Int64, files: Int?, uid: UInt32, gid: UInt32) throws(SandboxError) {
        BlockingCheck.check("PersistentDisk.mount")
        let fresh = !SysFile.exists(image)
        if fresh {
            try SysFile.makeDirectory((image as NSString).deletingLastPathComponent, mode: 0o700)
            // ext4's own metadata comes on top of the usable size: a 4 MiB journal, 256 bytes per
            // inode, ~1 MiB of the rest (measured: 16 MiB asked → 16.2–16.6 MiB free).
            let inodes = Int64(files ?? Int(bytes / 16384))
            let size = bytes + (4 << 20) + inodes * 256 + (1 << 20)
            let fd = open(image, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw SandboxError(.setupFailed, "creating \(image): \(String(cString: strerror(errno)))") }
            let truncated = ftruncate(fd, off_t(size))
            close(fd)
            guard truncated == 0 else {
                unlink(image)
                throw SandboxError(.setupFailed, "sizing \(image): \(String(cString: strerror(errno))); is the disk full?")
            }
            var argv = ["/usr/sbin/mkfs.ext4", "-q", "-F", "-m", "0", "-E", "root_owner=\(uid):\(gid)", "-J", "size=4"]
            if let files { argv += ["-N", String(files + 16)] }
            argv.append(image)
            guard try ChildProcess.runSilently(argv) == .exited(0) else {
                unlink(image)
                throw SandboxError(.setupFailed, "mkfs.ext4 failed on \(image) (is e2fsprogs installed?)")
            }
        }
        try SysFile.makeDirectory(path)
        guard try ChildProcess.runSilently(["/usr/bin/mount", "-o", "loop,nosuid,nodev", image, path]) == .exited(0) else {
            throw SandboxError(.setupFailed, "mounting \(image) at \(path) failed (loop devices available?)")
        }
        if fresh { rmdir(path + "/lost+found") }
    }

    /// Mounts the upper image (an image template's `rw` directory) where it is asked for.
    func upperMounter(bytes: Int64, owner: UInt32) -> @Sendable (String) throws -> Void {
        let image = upperImage
        return { rw in try PersistentDisk.mount(image: image, at: rw, bytes: bytes, files: nil, uid: owner, gid: owner) }
    }

    /// Bytes the image files take on disk.
    var allocatedBytes: Int64 { HibernatedFiles.allocatedBytes(directory) }
}
