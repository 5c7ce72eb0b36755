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

    @Test("a process is started as execvp would: the request's PATH, scripts without #!, EACCES remembered, each failing step named")
    func execvpSemantics() async throws {
        try await Live.with { backend, box in
            let setup = try await Live.sh(backend, box, """
                mkdir -p /workspace/a /workspace/b /workspace/c
                printf '#!/bin/sh\\necho shebang $1\\n' > /workspace/b/tool; chmod 755 /workspace/b/tool
                printf 'echo plain "$@"\\n' > /workspace/b/plain; chmod 755 /workspace/b/plain
                printf 'echo never\\n' > /workspace/a/tool; chmod 644 /workspace/a/tool
                printf 'echo never\\n' > /workspace/c/locked; chmod 644 /workspace/c/locked
                """)
            #expect(setup.outcome == .ok, "\(setup)")
            let path = ["PATH": "/workspace/a:/workspace/b:/workspace/c"]
            let tool = try await backend.exec(box, ExecRequest(argv: ["tool", "x"], env: path), output: nil)
            #expect(tool.stdout == "shebang x\n", "a non-executable match (EACCES) does not end the search: \(tool)")
            let plain = try await backend.exec(box, ExecRequest(argv: ["plain", "1", "2"], env: path), output: nil)
            #expect(plain.stdout == "plain 1 2\n", "a file without #! runs under /bin/sh with its arguments: \(plain)")
            let direct = try await backend.exec(box, ExecRequest(argv: ["/workspace/b/plain", "3"]), output: nil)
            #expect(direct.stdout == "plain 3\n", "the same for a path with a slash: \(direct)")
            let notOnPath = try await backend.exec(box, ExecRequest(argv: ["tool"], env: ["PATH": "/workspace/c"]), output: nil)
            #expect(notOnPath.exitCode == 127 && notOnPath.stderr.contains("execve tool") && notOnPath.stderr.contains("No such file"), "\(notOnPath)")
            let locked = try await backend.exec(box, ExecRequest(argv: ["locked"], env: path), output: nil)
            #expect(locked.exitCode == 127 && locked.stderr.contains("Permission denied"), "only EACCES seen: \(locked)")
            let noDir = try await backend.exec(box, ExecRequest(argv: ["true"], cwd: "/workspace/no-such-dir"), output: nil)
            #expect(noDir.exitCode == 127 && noDir.stderr.contains("chdir /workspace/no-such-dir") && noDir.stderr.contains("No such file"), "\(noDir)")
            let after = try await backend.exec(box, ExecRequest(argv: ["echo", "alive"]), output: nil)
            #expect(after.stdout == "alive\n", "a failed start leaves the agent serving")
        }
    }

    @Test("a process starts with default signal dispositions, no blocked signal, oom_score_adj 1000, its own session, no agent descriptor")
    func cleanStart() async throws {
        try await Live.with { backend, box in
            let r = try await Live.sh(backend, box, "grep -E '^(SigBlk|SigIgn):' /proc/self/status; cat /proc/self/oom_score_adj; ls /proc/self/fd | sort -n | tr '\\n' ' '; echo; cut -d' ' -f6 /proc/$$/stat; echo $$")
            let lines = r.stdout.split(separator: "\n").map(String.init)
            try #require(lines.count == 6, "\(r)")
            #expect(lines[0] == "SigBlk:\t0000000000000000" && lines[1] == "SigIgn:\t0000000000000000", "the agent ignores SIGPIPE and blocks SIGCHLD; a user process must not inherit that: \(r.stdout)")
            #expect(lines[2] == "1000")
            #expect(lines[3].split(separator: " ") == ["0", "1", "2", "3"], "only stdio (and ls's own directory fd): \(lines[3])")
            #expect(lines[4] == lines[5], "the shell leads its own session (setsid)")
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
