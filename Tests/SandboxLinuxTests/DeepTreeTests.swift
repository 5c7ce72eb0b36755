import Foundation
import Glibc
import SandboxCore
import SandboxTestSupport
import Testing
@testable import SandboxLinux

/// A sandbox decides how deep its files nest and what their names are. What the host does with
/// such a tree (keep it in an archive at hibernation, copy it for a snapshot, remove it) must
/// neither crash the process on a thread's stack nor leave the tree behind.
@Suite("Trees as deep as a sandbox makes them", .requires("requires root (mounts)") { getuid() == 0 ? nil : "requires root" })
struct DeepTreeTests {
    @Test("a tree deeper than PATH_MAX reaches, with names that are not UTF-8, is removed on a 128 KiB stack: a symlink out of it is not followed, a mount inside it is not entered")
    func deepTreeIsRemoved() async throws {
        Self.raiseDescriptorLimit()
        let dir = try Self.tempDir()
        defer { SysFile.removeTree(dir) }
        let tree = dir + "/tree", outside = dir + "/outside"
        try SysFile.makeDirectory(tree, mode: 0o755)
        try SysFile.makeDirectory(outside, mode: 0o755)
        try SysFile.create(outside + "/keep", Array("kept".utf8), mode: 0o644)
        // 3000 levels of two-byte names (one not UTF-8): 9000 bytes of path, past PATH_MAX.
        try Self.makeChain(tree, depth: 3000, name: [0x64, 0xFF], leaf: { fd in
            #expect(symlinkat(outside, fd, "out") == 0)
            #expect(mkdirat(fd, "\u{1}", 0o555) == 0)
        })
        #expect(symlink(outside, tree + "/link") == 0)
        try SysFile.makeDirectory(tree + "/mnt", mode: 0o755)
        #expect(mount("tmpfs", tree + "/mnt", "tmpfs", 0, "size=1m") == 0)
        defer { umount2(tree + "/mnt", Int32(MNT_DETACH)) }
        try SysFile.create(tree + "/mnt/inside", Array("x".utf8), mode: 0o644)

        await DedicatedThread.run(name: "test-rm", stackSize: 128 << 10) { SysFile.removeTree(tree) }

        #expect(SysFile.read(outside + "/keep") == "kept", "the symlinks' target is untouched")
        #expect(SysFile.read(tree + "/mnt/inside") == "x", "the mount's contents stay")
        #expect(try DirectoryFD.open(path: tree).entries() == [Array("mnt".utf8)], "everything but the mount point is gone")
    }

    @Test("a tree nested deeper than a hibernation keeps is refused naming the limit by the archive and by a snapshot's copy, on a 256 KiB stack; a tree 2000 levels deep is archived and read back")
    func deepTreeArchive() async throws {
        Self.raiseDescriptorLimit()
        let dir = try Self.tempDir()
        defer { SysFile.removeTree(dir) }
        try SysFile.makeDirectory(dir + "/deep", mode: 0o755)
        try Self.makeChain(dir + "/deep", depth: 2000, name: Array("d".utf8), leaf: { fd in
            let f = openat(fd, "bottom", O_CREAT | O_WRONLY | O_CLOEXEC, 0o600)
            #expect(write(f, "at the bottom", 13) == 13)
            close(f)
        })
        try SysFile.makeDirectory(dir + "/deeper", mode: 0o755)
        try Self.makeChain(dir + "/deeper", depth: TreeWalk.maxDepth + 1, name: Array("d".utf8), leaf: { _ in })

        let refused = await DedicatedThread.run(name: "test-pack", stackSize: 256 << 10) { () -> SandboxError? in
            do throws(SandboxError) { try TreeArchive.pack([("w", dir + "/deeper")], to: dir + "/deeper.kept"); return nil } catch { return error }
        }
        #expect(refused?.code == .limitExceeded)
        #expect(refused?.message.contains("deeper than \(TreeWalk.maxDepth) levels") == true, "\(String(describing: refused))")
        #expect(!SysFile.exists(dir + "/deeper.kept"))
        let copyRefused = await DedicatedThread.run(name: "test-copy", stackSize: 256 << 10) { () -> SandboxError? in
            do throws(SandboxError) { try TreeCopy.copy(dir + "/deeper", into: dir + "/copy"); return nil } catch { return error }
        }
        #expect(copyRefused?.code == .limitExceeded, "a snapshot's copy: \(String(describing: copyRefused))")

        let kept = await DedicatedThread.run(name: "test-pack", stackSize: 256 << 10) { () -> SandboxError? in
            do throws(SandboxError) {
                try TreeArchive.pack([("w", dir + "/deep")], to: dir + "/deep.kept")
                _ = try TreeArchive.unpack(section: "w", from: dir + "/deep.kept", into: dir + "/back")
                return nil
            } catch { return error }
        }
        #expect(kept == nil, "\(String(describing: kept))")
        let bottom = try Self.descend(dir + "/back", name: Array("d".utf8))
        #expect(bottom.depth == 2000)
        #expect(bottom.names == [Array("bottom".utf8)])
    }

    // MARK: helpers

    static func tempDir() throws -> String {
        let dir = NSTemporaryDirectory() + "sbx-deep-\(UUID().uuidString.prefix(8))"
        try SysFile.makeDirectory(dir, mode: 0o700)
        return dir
    }

    /// Makes `depth` nested directories named `name` under `root` (relative to each parent: the
    /// path is longer than PATH_MAX) and calls `leaf` with the deepest one open.
    static func makeChain(_ root: String, depth: Int, name: [UInt8], leaf: (Int32) -> Void) throws {
        var fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        try #require(fd >= 0)
        for _ in 0..<depth {
            try #require(Names.withC(name) { mkdirat(fd, $0, 0o755) } == 0)
            let child = Names.withC(name) { openat(fd, $0, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
            close(fd)
            try #require(child >= 0)
            fd = child
        }
        leaf(fd)
        close(fd)
    }

    /// Follows the chain of directories named `name` down from `root`: its depth and the names
    /// at the bottom.
    static func descend(_ root: String, name: [UInt8]) throws -> (depth: Int, names: [[UInt8]]) {
        var fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC), depth = 0
        try #require(fd >= 0)
        while true {
            let child = Names.withC(name) { openat(fd, $0, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
            if child < 0 { break }
            close(fd)
            (fd, depth) = (child, depth + 1)
        }
        defer { close(fd) }
        return (depth, try DirectoryFD.entries(of: fd))
    }

    /// A walk holds one descriptor per level, as the server does after raising its soft limit.
    static func raiseDescriptorLimit() {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = limit.rlim_max
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }
}
