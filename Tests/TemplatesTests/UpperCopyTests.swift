import Foundation
import SandboxCore
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
        try Self.makeSample(src)

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

    @Test("a tree archive (how a hibernated sandbox keeps its files) reads back into the tree the in-process copy leaves: xattrs, set-id modes, FIFOs, whiteouts, times, symlinks; no other device")
    func archiveSameAsCopy() throws {
        let dir = NSTemporaryDirectory() + "sbx-upper-\(UUID().uuidString.prefix(8))"
        defer { SysFile.removeTree(dir) }
        try Self.makeSample(dir + "/src")
        try TreeCopy.copy(dir + "/src", into: dir + "/copy")
        try TreeArchive.pack([("tree", dir + "/src")], to: dir + "/kept")
        #expect(try TreeArchive.unpack(section: "tree", from: dir + "/kept", into: dir + "/back"))
        let copy = try Self.listing(dir + "/copy"), back = try Self.listing(dir + "/back")
        #expect(back.count == 8)
        #expect(back == copy)
        var a = stat(), b = stat()
        #expect(lstat(dir + "/copy", &a) == 0 && lstat(dir + "/back", &b) == 0 && a.st_mode == b.st_mode && a.st_uid == b.st_uid, "the root's owner and mode")
    }

    @Test("a tree archive keeps holes, hard links and opaque-directory xattrs, holds several sections, and a section it lacks is reported, not made up")
    func archiveSections() throws {
        let dir = NSTemporaryDirectory() + "sbx-upper-\(UUID().uuidString.prefix(8))"
        defer { SysFile.removeTree(dir) }
        try FileManager.default.createDirectory(atPath: dir + "/up/opaque", withIntermediateDirectories: true)
        let fd = open(dir + "/up/opaque", O_RDONLY | O_DIRECTORY)
        #expect(ExtendedAttributes.set(fd: fd, name: "trusted.overlay.opaque", value: Array("y".utf8)) == nil)
        close(fd)
        try FileManager.default.createDirectory(atPath: dir + "/ws/d", withIntermediateDirectories: true)
        try SysFile.create(dir + "/ws/d/f", Array("one".utf8), mode: 0o640)
        #expect(link(dir + "/ws/d/f", dir + "/ws/g") == 0)
        let sparse = open(dir + "/ws/sparse", O_CREAT | O_WRONLY, 0o644)
        #expect(ftruncate(sparse, 64 << 20) == 0 && pwrite(sparse, "end", 3, (64 << 20) - 3) == 3)
        close(sparse)

        try TreeArchive.pack([("workspace", dir + "/ws"), ("upper", dir + "/up")], to: dir + "/kept")
        var st = stat()
        #expect(lstat(dir + "/kept", &st) == 0 && st.st_size < 64 << 10, "a 64 MiB sparse file takes its data, not its size: \(st.st_size)")
        #expect(try TreeArchive.sections(in: dir + "/kept") == ["workspace", "upper"])
        #expect(try !TreeArchive.unpack(section: "other", from: dir + "/kept", into: dir + "/none"))
        #expect(!SysFile.exists(dir + "/none"))
        try TreeArchive.unpack(section: "upper", from: dir + "/kept", into: dir + "/up2")
        try TreeArchive.unpack(section: "workspace", from: dir + "/kept", into: dir + "/ws2")
        let ofd = open(dir + "/up2/opaque", O_RDONLY | O_DIRECTORY)
        #expect(ExtendedAttributes.get(fd: ofd, name: "trusted.overlay.opaque") == Array("y".utf8))
        close(ofd)
        #expect(lstat(dir + "/ws2/g", &st) == 0 && st.st_nlink == 2 && st.st_mode & 0o7777 == 0o640)
        #expect(SysFile.read(dir + "/ws2/d/f") == "one")
        #expect(lstat(dir + "/ws2/sparse", &st) == 0 && st.st_size == 64 << 20 && st.st_blocks < 1024, "holes stay holes")
        let tail = open(dir + "/ws2/sparse", O_RDONLY)
        var end = [UInt8](repeating: 0, count: 3)
        #expect(pread(tail, &end, 3, (64 << 20) - 3) == 3 && end == Array("end".utf8))
        close(tail)
    }

    @Test("a damaged tree archive is refused naming it: cut short, a name turned into '..', a path in a name, not an archive; nothing lands outside the target")
    func damagedArchive() throws {
        let dir = NSTemporaryDirectory() + "sbx-upper-\(UUID().uuidString.prefix(8))"
        defer { SysFile.removeTree(dir) }
        try FileManager.default.createDirectory(atPath: dir + "/src", withIntermediateDirectories: true)
        try SysFile.create(dir + "/src/xx", Array("payload".utf8), mode: 0o644)
        try SysFile.create(dir + "/src/filler", Array(repeating: 1, count: 4096), mode: 0o644)
        try TreeArchive.pack([("t", dir + "/src")], to: dir + "/good")
        let good = try #require(FileManager.default.contents(atPath: dir + "/good").map { [UInt8]($0) })
        let at = try #require((0..<good.count - 1).first { good[$0] == 0x78 && good[$0 + 1] == 0x78 }, "the name xx in the archive")

        func refused(_ bytes: [UInt8], _ label: String) throws {
            let path = dir + "/bad-\(label)"
            try SysFile.create(path, bytes, mode: 0o600)
            let target = dir + "/out-\(label)/t"
            try FileManager.default.createDirectory(atPath: dir + "/out-\(label)", withIntermediateDirectories: true)
            do {
                try TreeArchive.unpack(section: "t", from: path, into: target)
                Issue.record("\(label): a damaged archive was accepted")
            } catch {
                #expect(error.message.contains(path) && error.message.contains("damaged"), "\(label): the error names the file: \(error.message)")
            }
            #expect(!SysFile.exists(dir + "/out-\(label)/xx") && !SysFile.exists(dir + "/xx"), "\(label): nothing outside the target")
        }
        try refused(Array(good.prefix(good.count / 2)), "short")
        var dots = good
        (dots[at], dots[at + 1]) = (0x2E, 0x2E)
        try refused(dots, "dotdot")
        var slash = good
        slash[at] = 0x2F
        try refused(slash, "slash")
        try refused(Array("not an archive at all".utf8), "garbage")
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

    /// A tree with a deep file carrying user and trusted xattrs, a set-uid file owned by a shifted
    /// id, a FIFO, a symlink out of the tree, a whiteout, a 1:3 device node and an old mtime.
    static func makeSample(_ src: String) throws {
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
