import Foundation
import SandboxTestSupport
import Testing
@testable import BackendOCI
@testable import SandboxCore
@testable import SandboxLinux

@Suite("Real runs in the container backend", .realSandboxes)
struct RunIntegrationTests {
    @Test("a shell command's stdout, stderr and exit code come back, and nothing is left behind")
    func shell() async throws {
        let r = try await TestSandbox.sh("echo out; echo err >&2; exit 7")
        #expect(r.stdout == "out\n")
        #expect(r.stderr == "err\n")
        #expect(r.exitCode == 7)
        #expect(r.outcome == .exitNonzero)
        #expect(r.cliExitStatus == 7)
        #expect(HostHealth.leftovers(of: r.sandboxId).isEmpty)
    }

    @Test("python3 code runs as uid 1000 in /workspace; the host template's root is minimal")
    func python() async throws {
        let r = try await TestSandbox.python("import os; print(os.getuid(), os.getgid(), os.getcwd()); print(sorted(os.listdir('/'))); print(os.listdir('/opt'))",
                                             profile: TestSandbox.profile { $0.template = "host" })
        #expect(r.outcome == .ok, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n")
        #expect(lines.first == "1000 1000 /workspace")
        #expect(!r.stdout.contains("'root'") && !r.stdout.contains("'work'") && !r.stdout.contains("swift"))
        #expect(lines.last == "['sandboxer']")  // only the empty layering mount points
    }

    @Test("node code runs")
    func node() async throws {
        let spec = SandboxSpec(profile: TestSandbox.profile())
        let req = ExecRequest(argv: Language.js.argv(), code: Array("console.log([3,1,2].sort().join(','))".utf8), codeFileName: Language.js.fileName)
        let r = try await TestSandbox.backend().run(spec, req, output: nil)
        #expect(r.stdout == "1,2,3\n", "\(r.stderr)")
        #expect(r.outcome == .ok)
    }

    @Test("stdin from bytes and from a file reaches the process")
    func stdin() async throws {
        let r1 = try await TestSandbox.sh("cat; echo", stdin: .bytes(Array("{\"a\":1}".utf8)))
        #expect(r1.stdout == "{\"a\":1}\n")
        let file = NSTemporaryDirectory() + "sbx-stdin-\(UUID().uuidString)"
        try "line1\nline2\n".write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let r2 = try await TestSandbox.sh("wc -l", stdin: .file(file))
        #expect(r2.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "2")
    }

    @Test("the environment is the base plus profile plus request, nothing of the host's")
    func environment() async throws {
        setenv("SANDBOXER_TEST_SECRET", "hunter2", 1)
        let prof = TestSandbox.profile { $0.env = ["FROM_PROFILE": "p"] }
        let r = try await TestSandbox.sh("env | sort", profile: prof, env: ["FROM_REQUEST": "r"])
        #expect(r.stdout.contains("FROM_PROFILE=p"))
        #expect(r.stdout.contains("FROM_REQUEST=r"))
        #expect(r.stdout.contains("HOME=/workspace"))
        #expect(!r.stdout.contains("hunter2"))
    }

    @Test("files written to /workspace are in the host directory after the run; host files are seen inside")
    func workspaceSync() async throws {
        let dir = NSTemporaryDirectory() + "sbx-ws-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir + "/in", withIntermediateDirectories: true)
        try "seed".write(toFile: dir + "/in/seed.txt", atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try await TestSandbox.sh("cat in/seed.txt; mkdir -p out; echo result > out/r.txt", workspace: dir)
        #expect(r.stdout == "seed")
        #expect(try String(contentsOfFile: dir + "/out/r.txt", encoding: .utf8) == "result\n")
        #expect(HostHealth.leftovers(of: r.sandboxId).isEmpty)
    }

    @Test("code over the profile's limit is refused before anything is created")
    func codeTooLarge() async throws {
        let spec = SandboxSpec(profile: .bounty)
        let req = ExecRequest(argv: Language.python.argv(), code: [UInt8](repeating: 0x20, count: 512 * 1024 + 1), codeFileName: "main.py")
        await #expect {
            try await TestSandbox.backend().run(spec, req, output: nil)
        } throws: { e in
            (e as? SandboxError)?.limit?.name == "code_bytes"
        }
        #expect(!FileManager.default.fileExists(atPath: ContainerLayout(stateDirectory: OCIBackend.defaultStateDirectory, id: spec.id).directory))
        #expect(HostHealth.leftovers(of: spec.id).isEmpty)
    }

    @Test("input over the profile's limit is refused before anything is created")
    func inputTooLarge() async throws {
        let spec = SandboxSpec(profile: .bounty)
        let req = ExecRequest(argv: ["cat"], stdin: .bytes([UInt8](repeating: 1, count: (1 << 20) + 1)))
        await #expect {
            try await TestSandbox.backend().run(spec, req, output: nil)
        } throws: { ($0 as? SandboxError)?.limit?.name == "input_bytes" }
        #expect(HostHealth.leftovers(of: spec.id).isEmpty)
    }

    @Test("a command that does not exist is reported, not hidden")
    func missingCommand() async throws {
        let spec = SandboxSpec(profile: TestSandbox.profile())
        let r = try await TestSandbox.backend().run(spec, ExecRequest(argv: ["/nonexistent/tool"]), output: nil)
        #expect(r.outcome != .ok)
        #expect(r.exitCode != 0)
        #expect(HostHealth.leftovers(of: r.sandboxId).isEmpty)
    }

    @Test("output streams live through the handler, capped like the result")
    func streaming() async throws {
        final class Box: @unchecked Sendable { var chunks: [(StdStream, [UInt8])] = []; let lock = NSLock() }
        let box = Box()
        let spec = SandboxSpec(profile: TestSandbox.profile { $0.limits.outputBytes = 10 })
        let r = try await TestSandbox.backend().run(spec, ExecRequest(argv: ["/bin/sh", "-c", "echo 0123456789abcdef; echo e >&2"]), output: { s, b in
            box.lock.lock(); box.chunks.append((s, b)); box.lock.unlock()
        })
        let out = box.chunks.filter { $0.0 == .stdout }.flatMap(\.1)
        #expect(String(decoding: out, as: UTF8.self) == "0123456789")
        #expect(r.stdout == "0123456789" && r.stdoutTruncated && !r.stderrTruncated)
        #expect(r.outcome == .outputTruncated)
    }

    @Test("usage and phase timings are reported", .timeLimit(.minutes(1)))
    func usageAndTimings() async throws {
        let r = try await TestSandbox.python("x = bytearray(20 * 1024 * 1024)\nsum(range(2_000_000))")
        #expect(r.outcome == .ok)
        #expect(r.usage.peakMemoryBytes > 20 << 20)
        #expect(r.usage.cpuMs > 0)
        #expect(r.usage.wallMs > 0)
        #expect(r.timings.startMs > 0 && r.timings.runMs > 0 && r.timings.teardownMs > 0 && r.timings.createMs > 0 && r.timings.bundleMs > 0)
    }

    @Test("runc runs the same bundle", .requires("requires runc") { OCIRuntime.locate("runc") == nil ? "runc is not installed (make deps installs it)" : nil })
    func runc() async throws {
        let r = try await TestSandbox.sh("id -u; cat /proc/self/status | grep NoNewPrivs", runtime: "runc")
        #expect(r.outcome == .ok, "\(r.stderr) \(r.reason ?? "")")
        #expect(r.stdout.contains("1000") && r.stdout.contains("NoNewPrivs:\t1"))
        #expect(HostHealth.leftovers(of: r.sandboxId).isEmpty)
    }

    @Test("runsc is reported as missing with a clear reason where gVisor is not installed", .enabled(if: OCIRuntime.locate("runsc") == nil))
    func runscMissing() async throws {
        await #expect {
            try await TestSandbox.sh("true", runtime: "runsc")
        } throws: { e in
            let e = e as! SandboxError
            return e.code == .hostUnsupported && e.message.contains("runsc")
        }
    }
}
