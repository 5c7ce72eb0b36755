import Foundation
import SandboxCore
import SandboxLinux
import SandboxTestSupport
import Testing
@testable import Templates

#if canImport(Glibc)
import Glibc
#endif

/// An image layer is an untrusted tar: unpacked in overlayfs's format, never written outside its
/// directory, never through a symlink, and never larger than the cap.
@Suite("Image layers: unpacking untrusted tars", .requires("requires root", ImageRequirement.root))
struct LayerUnpackTests {
    /// A tar of hand-made members (name, type, content, link target).
    static func tar(_ members: [(String, Character, String, String)]) -> [UInt8] {
        var out: [UInt8] = []
        for (name, type, content, link) in members {
            let bytes = Array(content.utf8)
            out += TarWriter.block(name: name, type: type, mode: 0o644, uid: 0, gid: 0, size: Int64(bytes.count), mtime: 0, link: link)
            out += bytes + [UInt8](repeating: 0, count: (512 - bytes.count % 512) % 512)
        }
        return out + [UInt8](repeating: 0, count: 1024)
    }

    /// Unpacks `bytes` into a fresh directory of `scratch`; returns the directory.
    static func unpack(_ bytes: [UInt8], _ scratch: Scratch, limit: Int64 = 1 << 20) throws -> String {
        let file = scratch.path + "/layer.tar", root = scratch.path + "/root"
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let fd = open(file, O_RDONLY)
        defer { close(fd) }
        _ = try LayerUnpacker(root: root, limit: limit, name: "test").unpack(TarReader(fd: fd, source: "test"))
        return root
    }

    @Test("a written layer reads back as the same tree: files, modes, owners, hard links, symlinks, long names, whiteouts, opaque directories")
    func roundTrip() async throws {
        let scratch = try Scratch()
        let layout = scratch.path + "/oci"
        let manifest = try await TestImage.write(layout: layout, tag: "v1", scratch: scratch)
        let m = try JSONDecoder().decode(OCIManifest.self, from: FileManager.default.contents(atPath: "\(layout)/blobs/sha256/\(manifest.digest.hex)")!)
        let top = scratch.path + "/top-again"
        try FileManager.default.createDirectory(atPath: top, withIntermediateDirectories: true)
        let fd = open("\(layout)/blobs/sha256/\(m.layers[1].digest.hex)", O_RDONLY)
        defer { close(fd) }
        let summary = try LayerUnpacker(root: top, limit: 1 << 20, name: "top").unpack(TarReader(fd: fd, source: "top"))
        #expect(summary.whiteouts == 2, "the deleted file and the opaque directory")
        var st = stat()
        #expect(lstat(top + "/gone.txt", &st) == 0 && (st.st_mode & S_IFMT) == S_IFCHR && st.st_rdev == 0, "a whiteout is the device 0/0")
        let dir = open(top + "/replaced", O_RDONLY | O_DIRECTORY)
        #expect(ExtendedAttributes.get(fd: dir, name: "trusted.overlay.opaque") == Array("y".utf8))
        close(dir)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: top + "/link") == "/etc/os-release")
        #expect(try String(contentsOfFile: top + "/" + TestImage.longName, encoding: .utf8) == "long\n")

        // The same tree written again gives the same bytes (names sorted, times fixed).
        let again = try ImageWriter(layout: layout).addLayer(from: top)
        #expect(again.digest == m.layers[1].digest)
    }

    @Test("hard links stay links within a layer, and a link to a lower layer's file becomes a copy")
    func hardLinks() throws {
        let scratch = try Scratch()
        let root = try Self.unpack(Self.tar([("bin/tool", "0", "tool\n", ""), ("bin/again", "1", "", "bin/tool")]), scratch)
        var a = stat(), b = stat()
        #expect(stat(root + "/bin/tool", &a) == 0 && stat(root + "/bin/again", &b) == 0 && a.st_ino == b.st_ino)

        let upper = scratch.path + "/upper"
        try FileManager.default.createDirectory(atPath: upper, withIntermediateDirectories: true)
        let file = scratch.path + "/upper.tar"
        try Data(Self.tar([("sbin/tool", "1", "", "bin/tool")])).write(to: URL(fileURLWithPath: file))
        let fd = open(file, O_RDONLY)
        defer { close(fd) }
        _ = try LayerUnpacker(root: upper, lowers: [root], limit: 1 << 20, name: "upper").unpack(TarReader(fd: fd, source: "upper"))
        #expect(try String(contentsOfFile: upper + "/sbin/tool", encoding: .utf8) == "tool\n")
    }

    @Test("members that would leave the layer are refused, naming the member, and nothing is written outside",
          arguments: [
            ([("../escape.txt", Character("0"), "x", "")], "'..'"),
            ([("/etc/escape.txt", Character("0"), "x", "")], "absolute path"),
            ([("evil", Character("2"), "", "/tmp"), ("evil/escape.txt", Character("0"), "x", "")], "goes through evil"),
            ([("a", Character("1"), "", "../../etc/passwd")], "'..'"),
            ([("b", Character("1"), "", "nowhere")], "neither this layer nor a layer below"),
          ])
    func escapes(_ members: [(String, Character, String, String)], _ message: String) throws {
        let scratch = try Scratch()
        let before = FileManager.default.fileExists(atPath: "/tmp/escape.txt")
        #expect {
            _ = try Self.unpack(Self.tar(members), scratch)
        } throws: { error in
            (error as? SandboxError)?.message.contains(message) == true && (error as? SandboxError)?.code == .invalidRequest
        }
        #expect(FileManager.default.fileExists(atPath: "/tmp/escape.txt") == before)
        #expect(!FileManager.default.fileExists(atPath: scratch.path + "/escape.txt"))
    }

    @Test("a layer whose content passes the cap is refused, naming the cap")
    func sizeCap() throws {
        let scratch = try Scratch()
        #expect {
            _ = try Self.unpack(Self.tar([("big", "0", String(repeating: "x", count: 5000), "")]), scratch, limit: 4096)
        } throws: { error in
            (error as? SandboxError)?.message.contains("layer size cap") == true
        }
    }

    @Test("a stream that is not a tar is refused with the reason")
    func notATar() throws {
        let scratch = try Scratch()
        #expect {
            _ = try Self.unpack(Array(repeating: UInt8(ascii: "z"), count: 2048), scratch)
        } throws: { error in
            (error as? SandboxError)?.message.contains("checksum") == true
        }
    }
}
