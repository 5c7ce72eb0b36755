import Foundation
import SandboxCore
import SandboxLinux
import SandboxTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The `sandboxer` executable built next to the test bundle.
enum CLIBinary {
    static var path: String? {
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [dir.appendingPathComponent("sandboxer"), dir.deletingLastPathComponent().appendingPathComponent("sandboxer")] {
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate.path }
        }
        let cwdBin = FileManager.default.currentDirectoryPath + "/.build/debug/sandboxer"
        return FileManager.default.isExecutableFile(atPath: cwdBin) ? cwdBin : nil
    }

    @Sendable static func missing() -> String? {
        path == nil ? "the sandboxer executable is not built (swift build --product sandboxer)" : nil
    }
}

/// `sandboxer run --server URL` is the local `sandboxer run` executed by a server from its warm
/// pool: the real CLI binary, run both ways, prints the same and exits the same.
@Suite(.serialized, .realSandboxes, .requires("requires the sandboxer executable", CLIBinary.missing))
struct RunOnServerTests {
    static var binary: String? { CLIBinary.path }

    struct Outcome: Equatable, CustomStringConvertible {
        var status: Termination
        var out: String
        var err: String
        var description: String { "status \(status), stdout \(out.debugDescription), stderr \(err.debugDescription)" }
    }

    /// Runs `sandboxer run ARGS` through `sh -c` (so `input` can be piped in), locally or with
    /// `--server URL --api-key KEY`.
    static func cli(_ args: [String], server: (url: String, key: String)? = nil, input: String? = nil) async throws -> Outcome {
        let bin = try #require(binary)
        var argv = [bin, "run"]
        if let server { argv += ["--server", server.url, "--api-key", server.key] }
        argv += args
        let quoted = argv.map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        let line = input.map { "printf %s '\($0)' | " + quoted } ?? quoted
        let (status, out, err) = try await ChildProcess.run(
            ["/bin/sh", "-c", line], environment: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "SANDBOXER_STATE_DIR=\(localState)", "SANDBOXER_CONFIG="])
        return Outcome(status: status, out: out, err: err)
    }

    /// The local runs' state directory (their sandboxes' host side), removed after the test.
    static let localState = "/run/sandboxer-runsrv-test-\(getpid())"

    @Test("a normal command, a failing one, a timeout and stdin: the same output and exit status locally and with --server")
    func sameAsLocal() async throws {
        defer { try? FileManager.default.removeItem(atPath: Self.localState) }
        try await ServedApp.with(warmPool: ["default": 2]) { app in
            let created = try await app.store.createAPIKey(tenantName: "acme")
            let server = (app.url, created.key)
            let cases: [(args: [String], input: String?, status: Int32)] = [
                (["--", "sh", "-c", "echo hello; echo to-stderr >&2"], nil, 0),
                (["--", "sh", "-c", "echo partial; exit 7"], nil, 7),
                (["--timeout", "1s", "--", "sh", "-c", "echo before; sleep 30"], nil, ExitStatus.timeout),
                (["-i", "--", "tr", "a-z", "A-Z"], "piped input", 0),
                (["--lang", "python", "--code", "import sys; print(sys.stdin.read()[::-1])", "-i"], "abc", 0),
            ]
            for c in cases {
                let local = try await Self.cli(c.args, input: c.input)
                let remote = try await Self.cli(c.args, server: server, input: c.input)
                #expect(local.status == .exited(c.status), "local \(c.args): \(local)")
                #expect(remote == local, "\(c.args): --server gave \(remote), locally \(local)")
            }
            let timeout = try await Self.cli(["--timeout", "1s", "--", "sleep", "30"], server: server)
            #expect(timeout.err.hasPrefix("sandboxer: timeout: wall-clock limit of 1000 ms reached"), "\(timeout)")
            // Every sandbox the runs used is gone: a finished run's delete does not wait for the
            // server's teardown, so the last ones may still be stopping for a moment.
            let tenant = created.record.tenantId
            func live() async throws -> [String] {
                try await app.manager.list(.init(tenantId: tenant, states: [.creating, .running, .stopping])).items.map(\.id)
            }
            try await HostHealth.waitUntil(tries: 300, every: .milliseconds(100)) { try await live().isEmpty }
            let left = try await live()
            #expect(left.isEmpty, "\(left)")
            let ended = try await app.manager.list(.init(tenantId: created.record.tenantId, states: [.destroyed])).items
            #expect(ended.count == cases.count + 1 && ended.allSatisfy { $0.reason?.hasPrefix("deleted by") == true }, "\(ended.map { ($0.id, $0.reason) })")
        }
    }

    @Test("--json prints the server's ExecResult; a failed --setup exits with its status as locally; local-only options and unknown profiles are refused with status 2")
    func jsonAndRefusals() async throws {
        defer { try? FileManager.default.removeItem(atPath: Self.localState) }
        try await ServedApp.with(warmPool: ["default": 1]) { app in
            let server = (app.url, try await app.key("acme"))
            let json = try await Self.cli(["--json", "--", "sh", "-c", "echo 42; exit 3"], server: server)
            #expect(json.status == .exited(3))
            let result = try JSONDecoder().decode(ExecResult.self, from: Data(json.out.utf8))
            #expect(result.stdout == "42\n" && result.exitCode == 3 && result.outcome == .exitNonzero)
            let setupLocal = try await Self.cli(["--setup", "echo preparing; exit 3", "--", "true"])
            let setupRemote = try await Self.cli(["--setup", "echo preparing; exit 3", "--", "true"], server: server)
            #expect(setupLocal.status == .exited(3), "\(setupLocal)")
            #expect(setupRemote.status == .exited(3) && setupRemote.err.contains("setup_command_failed"), "\(setupRemote)")
            // A profile file is read by the CLI and sent inline: its limits apply on the server too.
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("runsrv-\(UUID().uuidString.prefix(6)).yaml").path
            try "name: short\nextends: default\nresources:\n  timeout: 1s\n".write(toFile: file, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(atPath: file) }
            let fileLocal = try await Self.cli(["--profile", file, "--", "sh", "-c", "echo from-file; sleep 30"])
            let fileRemote = try await Self.cli(["--profile", file, "--", "sh", "-c", "echo from-file; sleep 30"], server: server)
            #expect(fileLocal.status == .exited(ExitStatus.timeout) && fileLocal.out == "from-file\n", "\(fileLocal)")
            #expect(fileRemote == fileLocal, "--server gave \(fileRemote), locally \(fileLocal)")
            let memory = try await Self.cli(["--memory", "64M", "--", "true"], server: server)
            #expect(memory.status == .exited(ExitStatus.refused))
            #expect(memory.err.contains("--memory cannot be used with --server"), "\(memory)")
            let unknown = try await Self.cli(["--profile", "no-such-profile", "--", "true"], server: server)
            #expect(unknown.status == .exited(ExitStatus.refused) && unknown.err.contains("not_found"), "\(unknown)")
            let badKey = try await Self.cli(["--", "true"], server: (app.url, "not-a-key"))
            #expect(badKey.status == .exited(ExitStatus.refused) && badKey.err.contains("unauthorized"), "\(badKey)")
        }
    }

    @Test("Ctrl-C kills the remote process and deletes its sandbox; the CLI exits 130")
    func interruptDeletesTheSandbox() async throws {
        try await ServedApp.with(warmPool: ["default": 1]) { app in
            let created = try await app.store.createAPIKey(tenantName: "acme")
            let (key, tenant) = (created.key, created.record.tenantId)
            let bin = try #require(Self.binary)
            let devnull = open("/dev/null", O_RDWR | O_CLOEXEC)
            defer { close(devnull) }
            let cli = try ChildProcess.spawn(
                [bin, "run", "--server", app.url, "--api-key", key, "--", "sleep", "986733"],
                environment: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "SANDBOXER_CONFIG="], stdin: devnull, stdout: devnull, stderr: devnull)
            var running: String?
            for _ in 0..<600 {  // up to 30 s: a debug build on a loaded machine starts slowly
                // The CLI's own argv holds the marker too: wait for a process of the sandbox.
                let page = try await app.manager.list(.init(tenantId: tenant, states: [.running]))
                if let r = page.items.first, HostHealth.processes(matching: "986733").contains(where: { $0 != cli.pid }) { running = r.id; break }
                try await Task.sleep(for: .milliseconds(50))
            }
            let id = try #require(running, "the run never started on the server")
            kill(cli.pid, SIGINT)
            #expect(await cli.wait() == .exited(130))
            let record = try await app.manager.get(tenantId: tenant, id: id)
            #expect(record.state == .destroyed, "\(record.state)")
            #expect(HostHealth.processes(matching: "986733").isEmpty)
        }
    }
}
