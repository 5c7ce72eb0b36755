import Foundation
import SandboxTestSupport
import Testing
@testable import BackendOCI
@testable import SandboxCore

/// Path traversal and symlinks against the file paths the host handles (code file, workspace sync).
@Suite("Attacks: paths and symlinks through host file handling", .realSandboxes)
struct FileAttackTests {
    @Test("a code file name with a path is refused", arguments: ["../../../tmp/evil", "/etc/passwd", "..", "a/b"])
    func codeFileTraversal(name: String) async throws {
        let spec = SandboxSpec(profile: TestSandbox.profile())
        let req = ExecRequest(argv: ["true"], code: Array("x".utf8), codeFileName: name)
        await #expect(throws: SandboxError.self) { try await TestSandbox.backend().run(spec, req, output: nil) }
        #expect(HostHealth.leftovers(of: spec.id).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: "/tmp/evil"))
    }

    @Test("symlinks made inside the workspace come back as links and are never followed by the host")
    func workspaceSymlinks() async throws {
        let dir = NSTemporaryDirectory() + "sbx-ws-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try await Attack.sh("""
            ln -s /etc/shadow shadow-link; ln -s / rootdir; ln -s ../../../../etc/passwd up; mkfifo fifo; echo ok > plain
            """, workspace: dir)
        #expect(r.outcome == .ok, "\(r.stderr)")
        let fm = FileManager.default
        #expect(try fm.destinationOfSymbolicLink(atPath: dir + "/shadow-link") == "/etc/shadow")
        #expect(try fm.destinationOfSymbolicLink(atPath: dir + "/rootdir") == "/")
        #expect(try fm.attributesOfItem(atPath: dir + "/up")[.type] as? FileAttributeType == .typeSymbolicLink)
        #expect(!fm.fileExists(atPath: dir + "/fifo"))
        #expect(try String(contentsOfFile: dir + "/plain", encoding: .utf8) == "ok\n")
    }

    @Test("a host symlink planted in the workspace is not followed when the sandbox writes back")
    func plantedSymlinkOnHost() async throws {
        let dir = NSTemporaryDirectory() + "sbx-ws-\(UUID().uuidString)"
        let target = NSTemporaryDirectory() + "sbx-target-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try "host data".write(toFile: target, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: dir); try? FileManager.default.removeItem(atPath: target) }
        // The workspace holds a link to a host file; inside, the sandbox replaces it with a regular file.
        try FileManager.default.createSymbolicLink(atPath: dir + "/out", withDestinationPath: target)
        let r = try await Attack.sh("cat out 2>&1; rm -f out; echo overwritten > out")
        _ = r
        let r2 = try await Attack.sh("cat out 2>/dev/null || echo dangling; rm -f out; echo overwritten > out", workspace: dir)
        #expect(r2.stdout == "dangling\n", "the host file was readable through the link: \(r2.stdout)")
        #expect(try String(contentsOfFile: target, encoding: .utf8) == "host data")
        #expect(try String(contentsOfFile: dir + "/out", encoding: .utf8) == "overwritten\n")
    }
}
