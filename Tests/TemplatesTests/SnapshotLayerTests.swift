import Crypto
import Foundation
import SandboxCore
import SandboxLinux
import SandboxTestSupport
import Testing
@testable import Templates

#if canImport(Glibc)
import Glibc
#endif

/// A sandbox's state as one layer: its upper directory in overlayfs's format plus its workspace
/// under `workspace/`, owners as the sandbox saw them, holes kept; and back into a new sandbox's
/// workspace in that sandbox's id range.
@Suite("Snapshot layers", .requires("requires root", ImageRequirement.root))
struct SnapshotLayerTests {
    static let base: UInt32 = 300_000

    /// An upper directory and a workspace as a sandbox with id base ``base`` leaves them.
    static func sandboxState(_ scratch: Scratch) throws -> (upper: String, workspace: String) {
        let upper = scratch.path + "/upper", ws = scratch.path + "/ws"
        try scratch.write("upper/etc/added", "new\n")
        chown(upper + "/etc/added", base, base)
        #expect(mknod(upper + "/etc/gone", S_IFCHR | 0o000, 0) == 0, "a whiteout: a file of the template deleted")
        try FileManager.default.createDirectory(atPath: upper + "/opq", withIntermediateDirectories: true)
        let opq = open(upper + "/opq", O_RDONLY | O_DIRECTORY)
        #expect(ExtendedAttributes.set(fd: opq, name: "trusted.overlay.opaque", value: Array("y".utf8)) == nil)
        close(opq)
        try FileManager.default.createDirectory(atPath: upper + "/workspace/hidden", withIntermediateDirectories: true)  // the mount point's own dir
        try scratch.write("ws/notes/a.txt", "workspace file\n", mode: 0o640)
        chown(ws + "/notes/a.txt", base + 1000, base + 1000)
        chown(ws + "/notes", base + 1000, base + 1000)
        #expect(symlink("notes/a.txt", ws + "/link") == 0)
        #expect(link(ws + "/notes/a.txt", ws + "/hard") == 0)
        let fd = open(ws + "/sparse.bin", O_WRONLY | O_CREAT, 0o600)
        #expect(ftruncate(fd, 100 << 20) == 0)
        #expect(pwrite(fd, "middle", 6, 50 << 20) == 6)
        close(fd)
        chown(ws + "/sparse.bin", 12, 12)  // outside the sandbox's range: written as 65534
        return (upper, ws)
    }

    @Test("upper + workspace become one layer: whiteouts, opaque dirs, workspace/ with image owners, a 100 MB sparse file stored as its data only")
    func layer() throws {
        let scratch = try Scratch()
        let (upper, ws) = try Self.sandboxState(scratch)
        let layer = try SnapshotLayer.write(upper: upper, workspace: ws, idBase: Self.base, to: scratch.path + "/layer.tar")
        #expect(layer.size < 64 << 10, "holes are not stored: \(layer.size) bytes")

        let fd = open(scratch.path + "/layer.tar", O_RDONLY)
        defer { close(fd) }
        let reader = TarReader(fd: fd, source: "snapshot")
        var entries: [String: TarEntry] = [:]
        while let e = try reader.next() { entries[e.path] = e }
        #expect(entries["etc/.wh.gone"] != nil && entries["opq/.wh..wh..opq"] != nil)
        #expect(entries["etc/added"]?.uid == 0)
        #expect(entries["workspace/hidden/"] == nil, "the upper directory's workspace mount point is left out")
        #expect(entries["workspace/notes/a.txt"].map { ($0.uid, $0.gid, $0.mode) } ?? (0, 0, 0) == (1000, 1000, 0o640))
        #expect(entries["workspace/link"]?.linkTarget == "notes/a.txt")
        let sparse = try #require(entries["workspace/sparse.bin"])
        #expect(sparse.sparseSize == 100 << 20 && sparse.uid == 65534)
    }

    @Test("a snapshot image restores: its workspace part lands in a new workspace in the new id range, contents, modes and holes kept")
    func restore() async throws {
        let scratch = try Scratch()
        let (upper, ws) = try Self.sandboxState(scratch)
        let store = ImageStore(dataDirectory: scratch.path + "/data")
        let file = try store.snapshotStagingFile()
        let layer = try SnapshotLayer.write(upper: upper, workspace: ws, idBase: Self.base, to: file)
        let info = try await store.commitSnapshot(id: "snap-test", base: "host", layerFile: file, layer: layer, tenantId: "t1", sandboxId: "sbx-1")
        #expect(!FileManager.default.fileExists(atPath: file), "the layer file moved into the store")
        #expect(info.template == "host" && info.tenantId == "t1" && info.sizeBytes == layer.size)
        #expect(try store.snapshots(tenantId: "t1").map(\.id) == ["snap-test"])
        #expect(try store.snapshots(tenantId: "t2").isEmpty)
        #expect(throws: SandboxError.self) { try store.snapshot("snap-test", tenantId: "t2") }
        #expect(try store.list().first?.kind == "snapshot")

        let top = try #require(try store.unpackedLowerDirectories("snap-test").first)
        let target = scratch.path + "/restored"
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        let newBase: UInt32 = 700_000
        try SnapshotLayer.restoreWorkspace(layer: top, into: target, idBase: newBase)
        var st = stat()
        #expect(lstat(target + "/notes/a.txt", &st) == 0 && st.st_uid == newBase + 1000 && st.st_mode & 0o7777 == 0o640)
        #expect(try String(contentsOfFile: target + "/notes/a.txt", encoding: .utf8) == "workspace file\n")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: target + "/link") == "notes/a.txt")
        var hard = stat()
        #expect(lstat(target + "/hard", &hard) == 0 && hard.st_ino == st.st_ino && hard.st_nlink == 2, "a hard link stays a link")
        #expect(lstat(target + "/sparse.bin", &st) == 0 && st.st_size == 100 << 20 && st.st_blocks * 512 < 1 << 20, "holes stay holes: \(st.st_blocks) blocks")
        let fd = open(target + "/sparse.bin", O_RDONLY)
        var word = [UInt8](repeating: 0, count: 6)
        #expect(pread(fd, &word, 6, 50 << 20) == 6 && word == Array("middle".utf8))
        close(fd)
        #expect(!FileManager.default.fileExists(atPath: target + "/hidden"))

        try await store.remove("snap-test")
        #expect(try store.list().isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: store.layers).isEmpty, "the unpacked layer goes with the snapshot")
    }

    @Test("template names cannot take the snapshot prefix")
    func reservedPrefix() {
        #expect(throws: SandboxError.self) { try ImageStore.validate(name: "snap-mine") }
    }
}
