import Foundation
import Testing
@testable import SandboxCore
@testable import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

/// The transfer engine between two plain directories (no sandbox needed).
@Suite("Workspace transfer")
struct WorkspaceTransferTests {
    static func tempDir() throws -> String {
        let dir = NSTemporaryDirectory() + "sbx-wt-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    static let limits = TransferLimits(maxBytes: 64 << 20, maxEntries: 1000)

    @Test("names that are not UTF-8 are shown with \\xNN escapes, valid text as is")
    func displayNames() {
        #expect(Names.display(Array("héllo".utf8)) == "héllo")
        #expect(Names.display(Array("bad".utf8) + [0xFF] + Array("ñ".utf8)) == "bad\\xFFñ")
    }

    @Test("a sparse file is copied as data plus holes, with its apparent size")
    func sparseCopy() throws {
        let dir = try Self.tempDir()
        defer { SysFile.removeTree(dir) }
        let src = open(dir + "/src", O_RDWR | O_CREAT, 0o600)
        let dst = open(dir + "/dst", O_RDWR | O_CREAT, 0o600)
        defer { close(src); close(dst) }
        #expect(ftruncate(src, 1 << 30) == 0)
        _ = pwrite(src, "tail", 4, (1 << 30) - 4)
        let written = try SparseCopy.copy(from: src, to: dst, size: 1 << 30) { _ in }
        var st = stat()
        fstat(dst, &st)
        #expect(st.st_size == 1 << 30)
        #expect(written <= 1 << 20)
        #expect(Int64(st.st_blocks) * 512 <= 1 << 20)
    }

    @Test("copy-back writes only changes, keeps host edits, reports deletions and honours the byte limit")
    func copyBackRules() throws {
        let host = try Self.tempDir()
        let ws = try Self.tempDir()
        defer { SysFile.removeTree(host); SysFile.removeTree(ws) }
        for name in ["same", "changed", "host-edited", "deleted"] { try name.write(toFile: "\(host)/\(name)", atomically: false, encoding: .utf8) }
        let hostFD = try DirectoryFD.open(path: host)
        let manifest = try WorkspaceTransfer.copyIn(from: hostFD, to: try DirectoryFD.open(path: ws), uid: 0, gid: 0, limits: Self.limits)
        #expect(manifest.entries.count == 4)
        // The sandbox changes two files, adds one, deletes one; the host edits one meanwhile.
        usleep(10_000)
        try "changed!".write(toFile: "\(ws)/changed", atomically: false, encoding: .utf8)
        try "sandbox".write(toFile: "\(ws)/host-edited", atomically: false, encoding: .utf8)
        try "new".write(toFile: "\(ws)/new", atomically: false, encoding: .utf8)
        unlink("\(ws)/deleted")
        try "host".write(toFile: "\(host)/host-edited", atomically: false, encoding: .utf8)

        let r = WorkspaceTransfer.copyBack(from: try DirectoryFD.open(path: ws), to: hostFD, manifest: manifest, sync: .merge, limits: Self.limits)
        #expect(r.copiedFiles == 2)
        #expect(r.unchangedFiles == 1)
        #expect(r.conflicts == ["host-edited"])
        #expect(r.deleted == ["deleted"] && !r.deletionsApplied)
        #expect(try String(contentsOfFile: "\(host)/host-edited", encoding: .utf8) == "host")
        #expect(try String(contentsOfFile: "\(host)/changed", encoding: .utf8) == "changed!")
        #expect(SysFile.exists("\(host)/deleted"))

        // Over the byte limit: the copy stops and says so.
        try String(repeating: "x", count: 3 << 20).write(toFile: "\(ws)/big", atomically: false, encoding: .utf8)
        let small = TransferLimits(maxBytes: 1 << 20, maxEntries: 1000)
        let r2 = WorkspaceTransfer.copyBack(from: try DirectoryFD.open(path: ws), to: hostFD, manifest: manifest, sync: .merge, limits: small)
        #expect(r2.limitReached?.contains("workspace limit") == true)
        #expect(!SysFile.exists("\(host)/big"))
    }

    @Test("copy-back past its deadline stops and says so instead of running on")
    func copyBackDeadline() throws {
        let host = try Self.tempDir()
        let ws = try Self.tempDir()
        defer { SysFile.removeTree(host); SysFile.removeTree(ws) }
        let manifest = try WorkspaceTransfer.copyIn(from: try DirectoryFD.open(path: host), to: try DirectoryFD.open(path: ws), uid: 0, gid: 0, limits: Self.limits)
        for i in 0..<20 { try "x".write(toFile: "\(ws)/f\(i)", atomically: false, encoding: .utf8) }
        let expired = TransferLimits(maxBytes: 64 << 20, maxEntries: 1000, deadlineMs: HostClock.nowMs() - 1)
        let r = WorkspaceTransfer.copyBack(from: try DirectoryFD.open(path: ws), to: try DirectoryFD.open(path: host), manifest: manifest, sync: .merge, limits: expired)
        #expect(r.limitReached?.contains("out of time") == true)
        #expect(r.copiedFiles == 0)
        #expect(r.deleted.isEmpty, "an incomplete walk must not report deletions")
    }
}
