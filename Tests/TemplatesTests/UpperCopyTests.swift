import Foundation
import SandboxLinux
import SandboxTestSupport
import Templates
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// What a hibernation copies to disk and back (an image sandbox's overlay upper directory) keeps
/// everything overlayfs reads: whiteouts (0/0 character devices), opaque-directory xattrs,
/// owners, modes, symlinks, hard links and sparse files.
@Suite("Copying an upper directory", .requires("requires root (device nodes, trusted.* xattrs, chown)") { getuid() == 0 ? nil : "requires root" })
struct UpperCopyTests {
    @Test("TreeCopy keeps whiteouts, trusted.overlay.opaque, owners, modes, symlinks, hard links and holes")
    func copyKeepsOverlayFormat() throws {
        let dir = NSTemporaryDirectory() + "sbx-upper-\(UUID().uuidString.prefix(8))"
        defer { SysFile.removeTree(dir) }
        let src = dir + "/src", dst = dir + "/dst"
        try FileManager.default.createDirectory(atPath: src + "/opaque", withIntermediateDirectories: true)
        #expect(mknod(src + "/deleted-from-template", S_IFCHR, 0) == 0)
        let fd = open(src + "/opaque", O_RDONLY | O_DIRECTORY)
        #expect(ExtendedAttributes.set(fd: fd, name: "trusted.overlay.opaque", value: Array("y".utf8)) == nil)
        close(fd)
        try SysFile.create(src + "/secret", Array("s\n".utf8), mode: 0o600)
        #expect(chown(src + "/secret", 101_000, 101_000) == 0)
        #expect(symlink("secret", src + "/link") == 0)
        #expect(link(src + "/secret", src + "/hard") == 0)
        let sparse = open(src + "/sparse", O_CREAT | O_WRONLY, 0o644)
        #expect(ftruncate(sparse, 64 << 20) == 0)
        close(sparse)
        #expect(chown(src, 100_000, 100_000) == 0)
        chmod(src, 0o751)

        try TreeCopy.copy(src, into: dst)

        var st = stat()
        #expect(lstat(dst + "/deleted-from-template", &st) == 0 && (st.st_mode & S_IFMT) == S_IFCHR && st.st_rdev == 0, "the whiteout")
        let ofd = open(dst + "/opaque", O_RDONLY | O_DIRECTORY)
        #expect(ExtendedAttributes.get(fd: ofd, name: "trusted.overlay.opaque") == Array("y".utf8))
        close(ofd)
        #expect(lstat(dst + "/secret", &st) == 0 && st.st_mode & 0o7777 == 0o600 && st.st_uid == 101_000 && st.st_gid == 101_000 && st.st_nlink == 2)
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: dst + "/link")) == "secret")
        #expect(lstat(dst + "/sparse", &st) == 0 && st.st_size == 64 << 20 && st.st_blocks < 1024, "holes stay holes")
        #expect(lstat(dst, &st) == 0 && st.st_uid == 100_000 && st.st_mode & 0o7777 == 0o751, "the target takes the source's owner and mode")
    }

    @Test("the in-process copy leaves the same tree as cp -a --sparse=always: user and trusted xattrs, set-id modes, FIFOs, times; a symlink out of the tree is copied, not followed; a device other than a whiteout is not copied")
    func sameAsCp() throws {
        let dir = NSTemporaryDirectory() + "sbx-upper-\(UUID().uuidString.prefix(8))"
        defer { SysFile.removeTree(dir) }
        let src = dir + "/src"
        try FileManager.default.createDirectory(atPath: src + "/a/b/c", withIntermediateDirectories: true)
        try SysFile.create(src + "/a/b/c/deep", Array(repeating: 7, count: 300_000), mode: 0o644)
        try SysFile.create(src + "/setuid", Array("#!/bin/sh\n".utf8), mode: 0o644)
        #expect(chown(src + "/setuid", 100_000, 100_100) == 0)
        #expect(chmod(src + "/setuid", 0o4755) == 0)
        #expect(mkfifo(src + "/a/fifo", 0o640) == 0)
        #expect(symlink("/etc/shadow", src + "/escape") == 0)
        #expect(mknod(src + "/a/whiteout", S_IFCHR, 0) == 0)
        #expect(mknod(src + "/a/null", S_IFCHR | 0o666, dev_t(1 << 8 | 3)) == 0)  // 1:3, the numbers of /dev/null
        let fd = open(src + "/a/b/c/deep", O_RDONLY)
        #expect(ExtendedAttributes.set(fd: fd, name: "user.e2b.owner", value: Array("agent".utf8)) == nil)
        #expect(ExtendedAttributes.set(fd: fd, name: "trusted.overlay.origin", value: [0, 1, 2]) == nil)
        close(fd)
        var old = [timespec(tv_sec: 1_000_000_000, tv_nsec: 0), timespec(tv_sec: 1_000_000_000, tv_nsec: 0)]
        #expect(utimensat(AT_FDCWD, src + "/a/b", &old, 0) == 0)

        try TreeCopy.copy(src, into: dir + "/ours")
        try FileManager.default.createDirectory(atPath: dir + "/cp", withIntermediateDirectories: true)
        #expect(try ChildProcess.runSilently(["/bin/cp", "-a", "--sparse=always", src + "/.", dir + "/cp/"]) == .exited(0))

        let ours = try Self.listing(dir + "/ours"), theirs = try Self.listing(dir + "/cp")
        // cp copies any device node; this copy keeps whiteouts only.
        #expect(!FileManager.default.fileExists(atPath: dir + "/ours/a/null"))
        #expect(ours.count == 8)
        #expect(ours == theirs.filter { !$0.hasPrefix("a/null ") })
        var st = stat()
        #expect(lstat(dir + "/ours/escape", &st) == 0 && (st.st_mode & S_IFMT) == S_IFLNK, "the symlink itself, not /etc/shadow")
        #expect(lstat(dir + "/ours/setuid", &st) == 0 && st.st_mode & 0o7777 == 0o4755, "set-id bits survive the chown")
    }

    @Test("a copy with an id base moves every owner into that range (a snapshot's workspace restored into a sandbox)")
    func shiftedOwners() throws {
        let dir = NSTemporaryDirectory() + "sbx-upper-\(UUID().uuidString.prefix(8))"
        defer { SysFile.removeTree(dir) }
        try FileManager.default.createDirectory(atPath: dir + "/src/d", withIntermediateDirectories: true)
        try SysFile.create(dir + "/src/d/f", [1], mode: 0o600)
        #expect(chown(dir + "/src/d/f", 1000, 1000) == 0)
        #expect(chown(dir + "/src/d", 0, 0) == 0)
        try TreeCopy.copy(dir + "/src", into: dir + "/dst", idBase: 200_000)
        var st = stat()
        #expect(lstat(dir + "/dst/d/f", &st) == 0 && st.st_uid == 201_000 && st.st_gid == 201_000)
        #expect(lstat(dir + "/dst/d", &st) == 0 && st.st_uid == 200_000)
    }

    /// Every entry below `root`: path (bytes), kind, mode, owner, size, blocks, device number,
    /// mtime, link count, symlink target, content hash and extended attributes.
    static func listing(_ root: String) throws -> [String] {
        var out: [String] = []
        var stack = [""]
        while let rel = stack.popLast() {
            let path = rel.isEmpty ? root : root + "/" + rel
            for name in try FileManager.default.contentsOfDirectory(atPath: path).sorted() {
                let r = rel.isEmpty ? name : rel + "/" + name, p = root + "/" + r
                var st = stat()
                guard lstat(p, &st) == 0 else { continue }
                var line = "\(r) \(String(st.st_mode, radix: 8)) \(st.st_uid):\(st.st_gid) \(st.st_size) \(st.st_rdev) n\(st.st_nlink)"
                line += " t\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)"
                if (st.st_mode & S_IFMT) == S_IFDIR { stack.append(r) }
                if (st.st_mode & S_IFMT) == S_IFLNK { line += " -> " + ((try? FileManager.default.destinationOfSymbolicLink(atPath: p)) ?? "?") }
                if (st.st_mode & S_IFMT) == S_IFREG, let data = FileManager.default.contents(atPath: p) { line += " h\(data.hashValue) b\(st.st_blocks > 0)" }
                if (st.st_mode & S_IFMT) == S_IFREG || (st.st_mode & S_IFMT) == S_IFDIR {
                    let fd = open(p, O_RDONLY | O_NOFOLLOW)
                    for name in ["user.e2b.owner", "trusted.overlay.origin", "trusted.overlay.opaque"] {
                        if let v = ExtendedAttributes.get(fd: fd, name: name) { line += " \(name)=\(v)" }
                    }
                    close(fd)
                }
                out.append(line)
            }
        }
        return out.sorted()
    }
}
