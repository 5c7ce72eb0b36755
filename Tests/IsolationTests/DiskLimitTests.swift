import Foundation
import SandboxTestSupport
import Testing
@testable import SandboxCore
import BackendOCI
import SandboxLinux

/// A writable root (an image template): what the sandbox changes in its root and what it writes to
/// `/workspace` share one size, `resources.disk`; filling it ends with `disk_limit`, and the host's
/// disk and memory outside the sandbox are never touched. A read-only root refuses writes outside
/// the workspace; `root: writable` on the host template is refused at load.
@Suite("Attacks: the disk of a writable root", .realSandboxes)
struct DiskLimitTests {
    @Test("the default template's root is writable: a file outside the workspace is kept for the run and counts against the disk")
    func writableRoot() async throws {
        let r = try await Attack.sh("echo made > /home/user/note && cat /home/user/note && touch /var/tmp/x && df -k /workspace | tail -1 | awk '{print $2}'",
                                    profile: TestSandbox.profile { $0.limits.diskBytes = 64 << 20 })
        #expect(r.outcome == .ok, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n")
        #expect(lines.first == "made")
        // The workspace sits on the root's disk: df shows the disk's size, 64 MiB.
        #expect(lines.last == "65536", "\(r.stdout)")
    }

    @Test("a disk bomb split between the root and the workspace stops at resources.disk with disk_limit")
    func diskBomb() async throws {
        let r = try await Attack.sh("""
            dd if=/dev/zero of=/workspace/a bs=1M count=40 2>/dev/null; echo ws $?
            dd if=/dev/zero of=/home/user/b bs=1M count=40 2>/dev/null; echo root $?
            """, profile: TestSandbox.profile { $0.limits.diskBytes = 64 << 20; $0.limits.memoryBytes = 512 << 20 })
        #expect(r.stdout.contains("ws 0") && r.stdout.contains("root 1"), "\(r.stdout) \(r.stderr)")
        #expect(r.outcome == .diskLimit, "\(r.outcome) \(r.reason ?? "")")
        #expect(r.reason?.contains("disk limit (64 MiB") == true, "\(r.reason ?? "")")
        #expect(r.cliExitStatus == ExitStatus.diskLimit)
    }

    @Test("a file-count bomb on a writable root ends with disk_limit too")
    func entryBomb() async throws {
        let r = try await Attack.sh("""
            mkdir -p /home/user/many && cd /home/user/many && i=0
            while [ $i -lt 100000 ]; do true > f$i 2>/dev/null || break; i=$((i+1)); done; echo made $i
            """, profile: TestSandbox.profile { $0.limits.diskBytes = 8 << 20; $0.limits.workspaceFiles = 100 })
        #expect(r.outcome == .diskLimit, "\(r.outcome) \(r.stdout)")
        let made = Int(r.stdout.split(separator: " ").last?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? -1
        #expect(made > 0 && made < 100_000, "\(r.stdout) \(r.stderr)")
    }

    @Test("root: readonly keeps the image as it is: writes outside /workspace and /tmp fail with EROFS, the workspace is its own")
    func readOnlyRoot() async throws {
        let r = try await Attack.sh("""
            if ! (echo x > /home/user/note) 2>/tmp/e; then grep -q 'Read-only file system' /tmp/e && echo refused; fi
            echo y > /workspace/ok && cat /workspace/ok
            echo z > /tmp/ok && cat /tmp/ok
            """, profile: TestSandbox.profile { $0.root = .readonly })
        #expect(r.stdout == "refused\ny\nz\n", "\(r.stdout) \(r.stderr)")
    }

    @Test("root: writable on the host template is refused when the profile is read, naming the key")
    func writableHostRefused() throws {
        #expect {
            _ = try ProfileLoader(searchPaths: []).parse("template: host\nroot: writable\n", defaultName: "p")
        } throws: { error in
            let e = error as? SandboxError
            return e?.field == "root" && e?.message.contains("writable root needs an image template") == true
        }
        let p = try ProfileLoader(searchPaths: []).parse("root: readonly\nresources:\n  disk: 2G\n", defaultName: "p")
        #expect(p.template == "debian" && p.root == .readonly && !p.rootIsWritable && p.limits.diskBytes == 2 << 30)
        #expect(Profile.default.rootIsWritable && !TestSandbox.profile { $0.template = "host" }.rootIsWritable)
    }
}
