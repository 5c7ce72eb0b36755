import Foundation
import SandboxTestSupport
import Testing
@testable import SandboxCore

/// Runs an attack inside a real sandbox and checks the host afterwards.
enum Attack {
    /// Python prelude for attacks: a raw `syscall()` that reports errno instead of raising.
    static let prelude = """
        import ctypes, errno, os, socket, sys
        libc = ctypes.CDLL(None, use_errno=True)
        def sc(nr, *args):
            r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
            return r, ctypes.get_errno()
        def verdict(ok_if_blocked, what):
            print(("BLOCKED " if ok_if_blocked else "ESCAPED ") + what, flush=True)

        """

    /// Runs python attack code; returns the result after asserting the host is healthy and clean.
    static func python(_ code: String, profile: Profile = TestSandbox.profile(), sourceLocation: SourceLocation = #_sourceLocation) async throws -> ExecResult {
        let r = try await TestSandbox.python(prelude + code, profile: profile)
        assertHealthy(r, sourceLocation: sourceLocation)
        return r
    }

    static func sh(_ script: String, profile: Profile = TestSandbox.profile(), stdin: ExecRequest.StdinSource = .none,
                   env: [String: String] = [:], workspace: String? = nil,
                   sourceLocation: SourceLocation = #_sourceLocation) async throws -> ExecResult {
        let r = try await TestSandbox.sh(script, profile: profile, stdin: stdin, env: env, workspace: workspace)
        assertHealthy(r, sourceLocation: sourceLocation)
        return r
    }

    /// The sandbox left nothing behind and the host still forks, execs and writes.
    static func assertHealthy(_ r: ExecResult, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(HostHealth.leftovers(of: r.sandboxId) == [], sourceLocation: sourceLocation)
        #expect(HostHealth.hostWorks(), "the host can no longer fork/exec/write", sourceLocation: sourceLocation)
    }

    /// Every attack line printed BLOCKED and none ESCAPED.
    static func expectBlocked(_ r: ExecResult, count: Int = 1, sourceLocation: SourceLocation = #_sourceLocation) {
        let blocked = r.stdout.split(separator: "\n").filter { $0.hasPrefix("BLOCKED") }
        #expect(blocked.count == count, "stdout: \(r.stdout) stderr: \(r.stderr)", sourceLocation: sourceLocation)
        #expect(!r.stdout.contains("ESCAPED"), "stdout: \(r.stdout)", sourceLocation: sourceLocation)
    }
}

/// x86_64 syscall numbers used by the attacks.
enum NR {
    static let ptrace = 101, mount = 165, umount2 = 166, sethostname = 170, chroot = 161, pivotRoot = 155
    static let keyctl = 250, addKey = 248, requestKey = 249, unshare = 272, perfEventOpen = 298, nameToHandleAt = 303
    static let openByHandleAt = 304, setns = 308, bpf = 321, userfaultfd = 323, ioUringSetup = 425, kexecLoad = 246
    static let initModule = 175, reboot = 169, clockSettime = 227, settimeofday = 164, swapon = 167, acct = 163
}
