import BackendOCI
import Foundation
import SandboxCore
import SandboxTestSupport
import Testing

@Suite("Agent: exec in a live sandbox", .realSandboxes)
struct AgentExecTests {
    @Test("true, echo, stdin, env, cwd and exit codes")
    func basics() async throws {
        try await Live.with { backend, box in
            let t = try await backend.exec(box, ExecRequest(argv: ["true"]), output: nil)
            #expect(t.outcome == .ok && t.exitCode == 0, "\(t)")
            let e = try await backend.exec(box, ExecRequest(argv: ["echo", "hello", "world"]), output: nil)
            #expect(e.stdout == "hello world\n")
            let cat = try await backend.exec(box, ExecRequest(argv: ["cat"], stdin: .bytes(Array("piped\n".utf8))), output: nil)
            #expect(cat.stdout == "piped\n")
            let env = try await backend.exec(box, ExecRequest(argv: ["sh", "-c", "echo $FOO:$HOME:$(id -u):$(pwd)"], env: ["FOO": "bar"], cwd: "/tmp"), output: nil)
            #expect(env.stdout == "bar:/workspace:1000:/tmp\n")
            let noAgentEnv = try await Live.sh(backend, box, "env | grep -c SANDBOXER || true; cat /proc/self/status | grep -E 'CapEff|CapBnd'")
            #expect(noAgentEnv.stdout.hasPrefix("0\n") && noAgentEnv.stdout.contains("CapEff:\t0000000000000000"), "\(noAgentEnv.stdout)")
            #expect(noAgentEnv.stdout.contains("CapBnd:\t0000000000000000"), "\(noAgentEnv.stdout)")
            let code = try await Live.sh(backend, box, "echo out; echo err >&2; exit 7")
            #expect(code.outcome == .exitNonzero && code.exitCode == 7 && code.stdout == "out\n" && code.stderr == "err\n")
            let shellCode = try await Live.sh(backend, box, "exit 130")
            #expect(shellCode.exitCode == 130 && shellCode.signal == nil, "an exit code above 128 is not a signal")
            let missing = try await backend.exec(box, ExecRequest(argv: ["no-such-command-xyz"]), output: nil)
            #expect(missing.exitCode == 127 && missing.outcome == .exitNonzero, "\(missing)")
            let py = try await backend.exec(box, ExecRequest(argv: Language.python.argv(), code: Array("print(6*7)".utf8), codeFileName: Language.python.fileName), output: nil)
            #expect(py.stdout == "42\n", "\(py.stderr)")
        }
    }

    @Test("user processes hold no capability, even when the profile's uid is 0 (the agent's)")
    func noCapabilities() async throws {
        try await Live.with({ $0.uid = 0; $0.gid = 0 }) { backend, box in
            let r = try await Live.sh(backend, box, "id -u; grep -E '^(CapPrm|CapEff|CapBnd|NoNewPrivs):' /proc/self/status")
            #expect(r.stdout.hasPrefix("0\n"), "\(r)")
            #expect(r.stdout.contains("CapPrm:\t0000000000000000") && r.stdout.contains("CapEff:\t0000000000000000"), "\(r.stdout)")
            #expect(r.stdout.contains("CapBnd:\t0000000000000000"), "no capability left in the bounding set either: \(r.stdout)")
            #expect(r.stdout.contains("NoNewPrivs:\t1"))
        }
    }

    @Test("a signal death is reported as killed with the signal")
    func signalDeath() async throws {
        try await Live.with { backend, box in
            let r = try await Live.sh(backend, box, "kill -SEGV $$")
            #expect(r.outcome == .killed && r.signal == 11 && r.exitCode == nil, "\(r)")
        }
    }

    @Test("timeout kills the exec and what it started; the sandbox lives on")
    func timeout() async throws {
        try await Live.with { backend, box in
            let t0 = ContinuousClock.now
            let r = try await Live.sh(backend, box, "sleep 986621 & setsid sleep 986622 & sleep 986623", timeout: .milliseconds(500))
            #expect(r.outcome == .timeout, "\(r)")
            #expect(ContinuousClock.now - t0 < .seconds(30), "the 500 ms deadline did not end it (a bound, not a speed test)")
            try await Task.sleep(for: .milliseconds(200))
            #expect(HostHealth.processes(matching: "98662").isEmpty)
            let next = try await backend.exec(box, ExecRequest(argv: ["echo", "alive"]), output: nil)
            #expect(next.stdout == "alive\n")
        }
    }

    @Test("output past the cap is drained, dropped and reported; non-UTF-8 bytes arrive intact")
    func outputCapAndBytes() async throws {
        try await Live.with({ $0.limits.outputBytes = 1000 }) { backend, box in
            let r = try await Live.sh(backend, box, "head -c 5000000 /dev/zero; echo done >&2")
            #expect(r.outcome == .outputTruncated && r.stdoutTruncated && !r.stderrTruncated, "\(r.outcome)")
            #expect(r.stdout.utf8.count == 1000 && r.stderr == "done\n")
            let chunks = Chunks()
            let b = try await backend.exec(box, ExecRequest(argv: ["printf", "\\377\\376\\000\\001\\200"]), output: { chunks.add($0, $1) })
            #expect(b.outcome == .ok)
            #expect(chunks.get(.stdout) == [0xFF, 0xFE, 0x00, 0x01, 0x80])
        }
    }

    @Test("cancelling the calling task kills the process and reports cancelled")
    func cancel() async throws {
        try await Live.with { backend, box in
            let task = Task { try await Live.sh(backend, box, "sleep 986631") }
            try await Task.sleep(for: .milliseconds(500))
            task.cancel()
            let r = try await task.value
            #expect(r.outcome == .cancelled, "\(r)")
            try await Task.sleep(for: .milliseconds(200))
            #expect(HostHealth.processes(matching: "986631").isEmpty)
        }
    }

    @Test("an exec over the memory limit is oom, and the next exec runs")
    func oom() async throws {
        try await Live.with({ $0.limits.memoryBytes = 64 << 20 }) { backend, box in
            let bomb = try await backend.exec(box, ExecRequest(argv: ["python3", "-c", "x=[]\nwhile True: x.append(bytearray(1<<20))"]), output: nil)
            #expect(bomb.outcome == .oom, "\(bomb)")
            let next = try await backend.exec(box, ExecRequest(argv: ["echo", "ok"]), output: nil)
            #expect(next.outcome == .ok && next.stdout == "ok\n")
        }
    }
}
