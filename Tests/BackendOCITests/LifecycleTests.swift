import Foundation
import SandboxTestSupport
import Testing
@testable import BackendOCI
@testable import SandboxCore
@testable import SandboxLinux

@Suite("Long-lived sandboxes: create, many execs, destroy", .realSandboxes)
struct LifecycleTests {
    @Test("state persists across execs in one sandbox, and destroy leaves nothing")
    func manyExecs() async throws {
        let backend = try TestSandbox.backend()
        let box = try await backend.create(SandboxSpec(profile: TestSandbox.profile()))
        let w = try await backend.exec(box, ExecRequest(argv: ["sh", "-c", "echo 41 > /workspace/n; echo $$"]), output: nil)
        #expect(w.outcome == .ok, "\(w.stderr) \(w.reason ?? "")")
        let r = try await backend.exec(box, ExecRequest(argv: ["sh", "-c", "echo $(( $(cat /workspace/n) + 1 ))"]), output: nil)
        #expect(r.stdout == "42\n")
        let py = try await backend.exec(box, ExecRequest(argv: Language.python.argv(), code: Array("import os; print(os.getuid())".utf8), codeFileName: "main.py"), output: nil)
        #expect(py.stdout == "1000\n")
        try await backend.destroy(box)
        #expect(HostHealth.leftovers(of: box.id) == [])
        await #expect(throws: SandboxError.self) { try await backend.exec(box, ExecRequest(argv: ["true"]), output: nil) }
    }

    @Test("an exec past its timeout is killed with its children; the sandbox keeps working")
    func execTimeout() async throws {
        let backend = try TestSandbox.backend()
        let box = try await backend.create(SandboxSpec(profile: TestSandbox.profile { $0.limits.timeout = .seconds(1) }))
        let slow = try await backend.exec(box, ExecRequest(argv: ["sh", "-c", "sleep 986611 & sleep 986612"]), output: nil)
        #expect(slow.outcome == .timeout)
        try await Task.sleep(for: .milliseconds(100))
        #expect(HostHealth.processes(matching: "98661").isEmpty)
        let next = try await backend.exec(box, ExecRequest(argv: ["echo", "alive"]), output: nil)
        #expect(next.stdout == "alive\n")
        try await backend.destroy(box)
        #expect(HostHealth.leftovers(of: box.id) == [])
    }

    @Test("execs get the same jail: no capabilities, seccomp, no_new_privs, uid 1000")
    func execIsJailed() async throws {
        let backend = try TestSandbox.backend()
        let box = try await backend.create(SandboxSpec(profile: TestSandbox.profile()))
        let r = try await backend.exec(box, ExecRequest(argv: ["sh", "-c", "id -u; grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; unshare -U true 2>&1 || echo unshare-refused"]), output: nil)
        #expect(r.stdout.contains("1000\n"))
        #expect(r.stdout.contains("CapEff:\t0000000000000000"))
        #expect(r.stdout.contains("NoNewPrivs:\t1"))
        #expect(r.stdout.contains("Seccomp:\t2"))
        #expect(r.stdout.contains("unshare-refused"))
        try await backend.destroy(box)
    }

    @Test("an exec that blows the memory limit is reported as oom, and the next exec still runs")
    func execOOM() async throws {
        let backend = try TestSandbox.backend()
        let box = try await backend.create(SandboxSpec(profile: TestSandbox.profile { $0.limits.memoryBytes = 64 << 20 }))
        let bomb = try await backend.exec(box, ExecRequest(argv: ["python3", "-c", "x=[]\nwhile True: x.append(bytearray(1<<20))"]), output: nil)
        #expect(bomb.outcome == .oom)
        let next = try await backend.exec(box, ExecRequest(argv: ["echo", "ok"]), output: nil)
        #expect(next.outcome == .ok && next.stdout == "ok\n")
        try await backend.destroy(box)
        #expect(HostHealth.leftovers(of: box.id) == [])
    }
}
