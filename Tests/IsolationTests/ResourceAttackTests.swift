import Foundation
import SandboxTestSupport
import Testing
@testable import SandboxCore

/// Attacks on the host's resources: each must end in its typed outcome with the host unharmed.
@Suite("Attacks: resource exhaustion", .realSandboxes)
struct ResourceAttackTests {
    @Test("a fork bomb hits the pids limit and is contained")
    func forkBomb() async throws {
        let p = TestSandbox.profile { $0.limits.pids = 64; $0.limits.timeout = .seconds(10) }
        let r = try await Attack.sh("f(){ f | f & }; f; sleep 2", profile: p)
        #expect(r.outcome == .pidsLimit, "\(r.reason ?? "")")
    }

    @Test("a memory bomb is OOM-killed at the memory limit")
    func memoryBomb() async throws {
        let p = TestSandbox.profile { $0.limits.memoryBytes = 64 << 20 }
        let r = try await Attack.python("x = []\nwhile True: x.append(bytearray(1 << 20))", profile: p)
        #expect(r.outcome == .oom)
        #expect(r.cliExitStatus == 123)
        #expect(r.usage.peakMemoryBytes <= 64 << 20)
    }

    @Test("a CPU spin is killed at the timeout")
    func cpuSpin() async throws {
        let p = TestSandbox.profile { $0.limits.timeout = .seconds(1) }
        let r = try await Attack.sh("while :; do :; done", profile: p)
        #expect(r.outcome == .timeout)
        #expect(r.cliExitStatus == 124)
    }

    @Test("sleepers whose children ignore SIGTERM are all killed at the timeout")
    func sleepersIgnoringTerm() async throws {
        let p = TestSandbox.profile { $0.limits.timeout = .seconds(1) }
        let r = try await Attack.sh("trap '' TERM; (trap '' TERM; sleep 987651) & (trap '' TERM; sleep 987652 &) ; sleep 987653", profile: p)
        #expect(r.outcome == .timeout)
        for marker in ["987651", "987652", "987653"] { #expect(HostHealth.processes(matching: marker).isEmpty) }
    }

    @Test("filling /workspace stops at its size cap: the workspace's own on a read-only root, the disk's on a writable one",
          arguments: [RootMode.readonly, .writable])
    func fillWorkspace(root: RootMode) async throws {
        let p = TestSandbox.profile { $0.limits.workspaceBytes = 16 << 20; $0.limits.diskBytes = 24 << 20; $0.root = root }
        let r = try await Attack.sh("dd if=/dev/zero of=/workspace/big bs=1M count=200 2>&1; echo size=$(stat -c %s /workspace/big)", profile: p)
        #expect(r.stdout.contains("No space left on device"))
        let size = Int64(r.stdout.split(separator: "=").last!.trimmingCharacters(in: .whitespacesAndNewlines)) ?? .max
        #expect(size <= (root == .readonly ? 16 << 20 : 24 << 20), "\(size)")
        #expect(r.outcome == (root == .readonly ? .workspaceLimit : .diskLimit), "\(r.outcome)")
    }

    @Test("filling /tmp and /dev/shm stops at their size cap")
    func fillTmp() async throws {
        let p = TestSandbox.profile { $0.limits.tmpBytes = 8 << 20 }
        let r = try await Attack.sh("dd if=/dev/zero of=/tmp/big bs=1M count=100 2>&1 | head -1; dd if=/dev/zero of=/dev/shm/big bs=1M count=100 2>&1 | head -1; echo $(stat -c %s /tmp/big) $(stat -c %s /dev/shm/big)", profile: p)
        let sizes = r.stdout.split(separator: "\n").last!.split(separator: " ").compactMap { Int64($0) }
        #expect(sizes.count == 2 && sizes.allSatisfy { $0 <= 8 << 20 }, "\(r.stdout)")
        #expect(r.stdout.components(separatedBy: "No space left on device").count == 3)
    }

    @Test("10 MB of stdout is capped at the output limit while the process runs to its end")
    func floodStdout() async throws {
        let r = try await Attack.sh("head -c 10000000 /dev/zero | tr '\\\\0' x; echo done >&2")
        #expect(r.outcome == .outputTruncated)
        #expect(r.stdout.utf8.count == 1 << 20)
        #expect(r.stdoutTruncated)
        #expect(r.stderr == "done\n")
        #expect(r.exitCode == 0)
    }

    @Test("a file larger than RLIMIT_FSIZE cannot be written")
    func fileSizeLimit() async throws {
        let p = TestSandbox.profile { $0.limits.fileSizeBytes = 1 << 20 }
        let r = try await Attack.sh("dd if=/dev/zero of=/workspace/f bs=1M count=4 2>/dev/null; echo $(stat -c %s /workspace/f)", profile: p)
        #expect(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == String(1 << 20))
    }
}
