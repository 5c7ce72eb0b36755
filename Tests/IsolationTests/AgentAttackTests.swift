import BackendOCI
import Foundation
import SandboxCore
import SandboxLinux
import SandboxTestSupport
import Testing

/// Attacks from user code on the agent (pid 1 of a live sandbox): it must survive, keep its
/// secrets and keep answering.
@Suite("Attacks: the in-sandbox agent", .realSandboxes)
struct AgentAttackTests {
    static func live(_ edit: (inout Profile) -> Void = { _ in }, _ body: (OCIBackend, SandboxHandle) async throws -> Void) async throws {
        let backend = try TestSandbox.backend()
        let box = try await backend.create(SandboxSpec(profile: TestSandbox.profile(edit)))
        do {
            try await body(backend, box)
            // Whatever the attack did, the agent still serves.
            let alive = try await backend.exec(box, ExecRequest(argv: ["echo", "agent-alive"]), output: nil)
            #expect(alive.stdout == "agent-alive\n", "\(alive)")
            try await backend.destroy(box)
        } catch {
            await backend.collect(id: box.id)
            throw error
        }
        #expect(HostHealth.leftovers(of: box.id) == [])
        #expect(HostHealth.hostWorks())
    }

    static func python(_ backend: OCIBackend, _ box: SandboxHandle, _ code: String) async throws -> ExecResult {
        try await backend.exec(box, ExecRequest(argv: ["python3", "-c", Attack.prelude + code]), output: nil)
    }

    @Test("kill -9 1 is refused; kill -9 -1 kills only the user's own processes")
    func killInit() async throws {
        try await Self.live { backend, box in
            let one = try await Self.python(backend, box, """
                try:
                    os.kill(1, 9); verdict(False, 'kill -9 1 succeeded')
                except PermissionError:
                    verdict(True, 'kill -9 1: EPERM')
                """)
            Attack.expectBlocked(one)
            let victim = try await backend.startProcess(box, ExecRequest(argv: ["sleep", "986661"]), options: ProcessOptions())
            let all = try await backend.exec(box, ExecRequest(argv: ["sh", "-c", "kill -9 -1; echo after"]), output: nil)
            #expect(all.stdout == "after\n", "\(all)")
            let v = try await backend.connect(box, pid: victim.pid, output: nil)
            #expect(v.signal == 9, "the user's own processes die: \(v)")
        }
    }

    @Test("ptrace of the agent, /proc/1/mem and /proc/1/environ are refused")
    func procAndPtrace() async throws {
        try await Self.live { backend, box in
            let r = try await Self.python(backend, box, """
                rc, e = sc(\(NR.ptrace), 16, 1, 0, 0)  # PTRACE_ATTACH to the agent
                verdict(rc == -1 and e in (errno.EPERM, errno.EACCES), f'ptrace attach 1 errno={e}')
                for f in ('/proc/1/mem', '/proc/1/environ', '/proc/1/cmdline_is_fine_skip'):
                    if f.endswith('skip'): continue
                    try:
                        with open(f, 'rb') as h: data = h.read(64)
                        verdict(False, f'{f} read {len(data)} bytes')
                    except (PermissionError, OSError) as ex:
                        verdict(True, f'{f}: {ex.__class__.__name__}')
                try:
                    os.listdir('/proc/1/fd'); verdict(False, '/proc/1/fd listed')
                except PermissionError:
                    verdict(True, '/proc/1/fd: EPERM')
                """)
            Attack.expectBlocked(r, count: 4)
        }
    }

    @Test("the agent's socket cannot be reached from inside")
    func socket() async throws {
        try await Self.live { backend, box in
            let r = try await Self.python(backend, box, """
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    s.connect('/.sandboxer/agent/agent.sock'); verdict(False, 'connected to the agent socket')
                except OSError as ex:
                    verdict(ex.errno in (errno.EACCES, errno.EPERM), f'connect: {ex}')
                try:
                    os.listdir('/.sandboxer/agent'); verdict(False, 'listed the agent directory')
                except PermissionError:
                    verdict(True, 'list agent dir: EPERM')
                try:
                    open('/.sandboxer/bin/sandboxer-agent', 'ab'); verdict(False, 'agent binary writable')
                except OSError:
                    verdict(True, 'agent binary read-only')
                """)
            Attack.expectBlocked(r, count: 3)
        }
    }

    @Test("a process as the sandbox's root (E2B's user root) holds no capability and cannot reach the agent")
    func rootProcess() async throws {
        try await Self.live { backend, box in
            let start = ExecRequest(argv: ["python3", "-c", Attack.prelude + """
                verdict(os.getuid() == 0 and os.getgid() == 0, f'runs as uid {os.getuid()} gid {os.getgid()}')
                caps = [l.split()[1] for l in open('/proc/self/status') if l.startswith(('CapEff', 'CapPrm', 'CapBnd'))]
                verdict(caps == ['0000000000000000'] * 3, f'capabilities {caps}')
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    s.connect('/.sandboxer/agent/agent.sock'); verdict(False, 'connected to the agent socket')
                except OSError as ex:
                    verdict(ex.errno in (errno.EACCES, errno.EPERM), f'connect: {ex}')
                for attempt in (lambda: os.listdir('/.sandboxer/agent'),
                                lambda: os.rename('/.sandboxer/agent/agent.sock', '/tmp/stolen'),
                                lambda: os.rename('/.sandboxer/agent', '/tmp/stolen-dir')):
                    try:
                        attempt(); verdict(False, 'reached the agent directory')
                    except OSError as ex:
                        verdict(ex.errno in (errno.EACCES, errno.EPERM, errno.EBUSY, errno.EXDEV), f'agent dir: {ex}')
                rc, e = sc(\(NR.ptrace), 16, 1, 0, 0)
                verdict(rc == -1 and e in (errno.EPERM, errno.EACCES), f'ptrace attach 1 errno={e}')
                try:
                    open('/proc/1/environ', 'rb').read(); verdict(False, '/proc/1/environ read')
                except OSError as ex:
                    verdict(True, f'/proc/1/environ: {ex}')
                # Same uid as the agent, so kill(2) is allowed: the kernel drops SIGKILL for the
                # namespace's init, the agent ignores SIGTERM/SIGINT from inside; `live` checks
                # that it still answers.
                for sig in (9, 15, 2):
                    os.kill(1, sig)
                """], stdin: .bytes([]))
            let p = try await backend.startProcess(box, start, options: ProcessOptions(background: true, asRoot: true))
            let r = try await backend.connect(box, pid: p.pid, output: nil)
            Attack.expectBlocked(r, count: 8)
            #expect(!r.stdout.contains("ESCAPED"), "\(r.stdout)")
        }
    }

    @Test("a child flooding stdout does not stop the agent serving others")
    func flood() async throws {
        try await Self.live { backend, box in
            let flood = try await backend.startProcess(box, ExecRequest(argv: ["sh", "-c", "cat /dev/zero"]), options: ProcessOptions())
            let loud = Task { try await backend.exec(box, ExecRequest(argv: ["sh", "-c", "head -c 200000000 /dev/zero"]), output: nil) }
            try await Task.sleep(for: .milliseconds(300))
            let t0 = ContinuousClock.now
            for _ in 0..<5 {
                let r = try await backend.exec(box, ExecRequest(argv: ["echo", "second"]), output: nil)
                #expect(r.stdout == "second\n")
            }
            // The flood must not starve the others until it ends (it would run for minutes): a bound, not a speed test.
            #expect(ContinuousClock.now - t0 < .seconds(60))
            let l = try await loud.value
            #expect(l.stdoutTruncated && l.outcome == .outputTruncated)
            try await backend.signal(box, pid: flood.pid, signal: 9)
        }
    }

    @Test("a fork bomb beside the agent: the pids limit holds and the agent answers")
    func forkBomb() async throws {
        try await Self.live({ $0.limits.pids = 64 }) { backend, box in
            let bomb = try await backend.startProcess(box, ExecRequest(argv: ["sh", "-c", "b() { b | b & }; b; exec sleep 30"]), options: ProcessOptions())
            try await Task.sleep(for: .seconds(1))
            let cgroup = SandboxCgroup(id: box.id, host: CgroupHost.detect())
            #expect(cgroup.pids().count <= 64)
            // File requests need no fork: the agent answers while the bomb holds every pid.
            let st = try await backend.stat(box, path: "/workspace")
            #expect(st.type == .directory)
            // The agent still lists processes (the bomb's leader may itself have died of a failed fork).
            _ = try await backend.processes(box)
            // Its group may be gone already (not_found): the sandbox's teardown kills what is left.
            try? await backend.signal(box, pid: bomb.pid, signal: 9)
        }
    }
}
