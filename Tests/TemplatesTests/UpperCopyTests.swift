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
    @Test("ImageRoot.copyTree keeps whiteouts, trusted.overlay.opaque, owners, modes, symlinks, hard links and holes")
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

        try ImageRoot.copyTree(src, into: dst)

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
}
