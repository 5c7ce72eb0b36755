import Foundation
import SandboxTestSupport
import Testing
@testable import BackendOCI
@testable import SandboxCore
@testable import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

/// A run never outlives the process that owns it: signals, a closed pipe, SIGKILL and a cancelled
/// task all end in the sandbox killed and removed.
@Suite("Attacks: runs that outlive their owner", .serialized, .realSandboxes)
struct RunLifetimeTests {
    /// Starts `sandboxer run` with a marker process inside; returns the CLI and the sandbox id once it runs.
    static func startCLI(marker: Int, state: String, extra: [String] = [], stdout: Int32? = nil) async throws -> (ChildProcess, String) {
        let bin = try #require(CrashRecoveryTests.binary, "the sandboxer executable is not built")
        let devnull = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { close(devnull) }
        let env = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "SANDBOXER_STATE_DIR=\(state)"]
        let cli = try ChildProcess.spawn(
            [bin, "run", "--timeout", "120s"] + extra + ["--", "sh", "-c", "sleep \(marker) & while :; do echo tick; sleep 0.05; done"],
            environment: env, stdin: devnull, stdout: stdout ?? devnull, stderr: devnull)
        for _ in 0..<600 {
            if let id = CrashRecoveryTests.sandboxes(ownedBy: cli.pid, stateDirectory: state).first,
               HostHealth.processes(matching: "sleep \(marker)").contains(where: { $0 != cli.pid }) { return (cli, id) }
            try await Task.sleep(for: .milliseconds(50))
        }
        kill(cli.pid, SIGKILL)
        throw SandboxError(.setupFailed, "the sandbox never started")
    }

    /// Waits (bounded, not a speed check) until nothing of the sandbox is left.
    static func expectGone(_ id: String, marker: Int, state: String, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        for _ in 0..<300 {
            if HostHealth.leftovers(of: id, stateDirectory: state).isEmpty && HostHealth.processes(matching: "sleep \(marker)").isEmpty { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(HostHealth.leftovers(of: id, stateDirectory: state) == [], sourceLocation: sourceLocation)
        #expect(HostHealth.processes(matching: "sleep \(marker)").isEmpty, "the sandbox outlived its CLI", sourceLocation: sourceLocation)
    }

    @Test("SIGINT and SIGTERM tear the sandbox down before the CLI exits 130 / 143", arguments: [(SIGINT, Int32(130)), (SIGTERM, Int32(143))])
    func signals(sig: Int32, status: Int32) async throws {
        let state = "/run/sandboxer-life-\(getpid())-\(sig)"
        defer { SysFile.removeTree(state) }
        let marker = 975_300 + Int(sig)
        let (cli, id) = try await Self.startCLI(marker: marker, state: state)
        kill(cli.pid, sig)
        let t = await cli.wait()
        #expect(t == .exited(status))
        // Torn down before the exit, not later by someone else (killed processes may take a
        // moment to finish exiting after leaving their cgroup).
        #expect(HostHealth.leftovers(of: id, stateDirectory: state) == [])
        try await Self.expectGone(id, marker: marker, state: state)
    }

    @Test("a closed output pipe (| head) ends the run: the sandbox is removed and the CLI exits 141")
    func closedPipe() async throws {
        let state = "/run/sandboxer-life-\(getpid())-pipe"
        defer { SysFile.removeTree(state) }
        let pipe = try Pipe2()
        let marker = 975_399
        let (cli, id) = try await Self.startCLI(marker: marker, state: state, stdout: pipe.writeEnd)
        pipe.closeWrite()
        pipe.closeRead()  // the reader (head) went away
        let t = await cli.wait()
        #expect(t == .exited(141))
        #expect(HostHealth.leftovers(of: id, stateDirectory: state) == [])
        try await Self.expectGone(id, marker: marker, state: state)
    }

    /// Starts `sandboxer run` of an endless loop and returns as soon as its sandbox's directory
    /// appears (staging included): the sandbox is being made.
    static func startCLIEarly(state: String, round: Int) async throws -> (ChildProcess, String) {
        let bin = try #require(CrashRecoveryTests.binary, "the sandboxer executable is not built")
        let devnull = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { close(devnull) }
        let cli = try ChildProcess.spawn(
            [bin, "run", "--timeout", "60s", "--", "sh", "-c", "while :; do sleep 0.05; done"],
            environment: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "SANDBOXER_STATE_DIR=\(state)"], stdin: devnull, stdout: devnull, stderr: devnull)
        var id: String?
        for _ in 0..<40_000 where id == nil {
            id = CrashRecoveryTests.sandboxes(ownedBy: cli.pid, stateDirectory: state).first
            if id == nil { usleep(250) }
        }
        guard let id else {
            kill(cli.pid, SIGKILL)
            _ = await cli.wait()
            throw SandboxError(.setupFailed, "round \(round): no sandbox appeared")
        }
        return (cli, id)
    }

    @Test("SIGINT while the sandbox is still being made or started (the runtime starting the container) ends the run too: the container is killed until the runtime exits")
    func signalDuringStart() async throws {
        let state = "/run/sandboxer-life-\(getpid())-early"
        defer { SysFile.removeTree(state) }
        for round in 0..<5 {
            // The moment its directory appears the sandbox is being set up; later rounds wait a little longer.
            let (cli, sandbox) = try await Self.startCLIEarly(state: state, round: round)
            usleep(UInt32(round) * 15_000)
            kill(cli.pid, SIGINT)
            let watchdog = Task { try await Task.sleep(for: .seconds(30)); kill(cli.pid, SIGKILL) }
            let t = await cli.wait()
            watchdog.cancel()
            #expect(t == .exited(130), "round \(round): \(t)")
            try await Self.expectGone(sandbox, marker: 999_999_999, state: state)
        }
    }

    @Test("SIGKILL of the CLI: the sandbox dies with it, without any gc")
    func sigkill() async throws {
        let state = "/run/sandboxer-life-\(getpid())-kill"
        defer { SysFile.removeTree(state) }
        let marker = 975_398
        let (cli, id) = try await Self.startCLI(marker: marker, state: state)
        kill(cli.pid, SIGKILL)
        _ = await cli.wait()
        try await Self.expectGone(id, marker: marker, state: state)
    }

    @Test("SIGKILL of the CLI while its sandbox is still being made (its directory just appeared): nothing of it is left, without any gc")
    func sigkillDuringSetUp() async throws {
        let state = "/run/sandboxer-life-\(getpid())-killearly"
        defer { SysFile.removeTree(state) }
        for round in 0..<3 {
            let (cli, sandbox) = try await Self.startCLIEarly(state: state, round: round)
            kill(cli.pid, SIGKILL)
            _ = await cli.wait()
            try await Self.expectGone(sandbox, marker: 999_999_998, state: state)
        }
    }

    @Test("cancelling the run's task kills the sandbox and reports cancelled")
    func cancelledTask() async throws {
        let marker = 975_397
        let task = Task { try await TestSandbox.sh("sleep \(marker)") }
        try await HostHealth.waitUntil(tries: 600, every: .milliseconds(50)) { !HostHealth.processes(matching: "sleep \(marker)").isEmpty }
        task.cancel()
        let r = try await task.value
        #expect(r.outcome == .cancelled, "\(r.outcome)")
        Attack.assertHealthy(r)
        try await HostHealth.waitUntil(tries: 100, every: .milliseconds(100)) { HostHealth.processes(matching: "sleep \(marker)").isEmpty }
        #expect(HostHealth.processes(matching: "sleep \(marker)").isEmpty)
    }
}

/// A sandbox's code, input, workspace and logs are not readable by other local users, and its
/// id is not listable.
@Suite("Attacks: tenant data on the host", .realSandboxes)
struct TenantDataTests {
    /// Runs `argv` as user nobody; returns its exit status and output.
    static func asNobody(_ argv: [String]) async throws -> (Termination, String) {
        let (t, out, err) = try await ChildProcess.run(["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] + argv)
        return (t, out + err)
    }

    @Test("another local user can neither list sandbox ids nor read a sandbox's code, input or workspace")
    func otherUsersSeeNothing() async throws {
        let spec = SandboxSpec(profile: TestSandbox.profile())
        let layout = ContainerLayout(stateDirectory: OCIBackend.defaultStateDirectory, id: spec.id)
        let req = ExecRequest(
            argv: ["/bin/sh", "-c", "echo secret-output > /workspace/made.txt; sleep 3"], code: Array("SECRET_CODE = 1\n".utf8),
            codeFileName: "main.py", stdin: .bytes(Array("secret input".utf8)))
        async let run = TestSandbox.backend().run(spec, req, output: nil)
        for _ in 0..<200 where !SysFile.exists(layout.workspace + "/made.txt") { try await Task.sleep(for: .milliseconds(50)) }
        #expect(SysFile.exists(layout.workspace + "/made.txt"), "the sandbox did not start")
        for path in [layout.codeDirectory + "/main.py", layout.configFile, layout.workspace + "/made.txt", layout.logFile] {
            let (t, out) = try await Self.asNobody(["/bin/cat", path])
            #expect(t != .exited(0) && !out.contains("secret") && !out.contains("SECRET"), "nobody read \(path): \(out)")
        }
        for root in CgroupHost.detect().allMounts {
            let (t, out) = try await Self.asNobody(["/bin/ls", "\(root)/\(CgroupHost.groupName)"])
            #expect(t != .exited(0) && !out.contains(spec.id), "nobody listed sandbox ids in \(root): \(out)")
        }
        let (t, out) = try await Self.asNobody(["/bin/ls", ContainerLayout.sandboxesDirectory(OCIBackend.defaultStateDirectory)])
        #expect(t != .exited(0) && !out.contains(spec.id))
        let r = try await run
        #expect(r.outcome == .ok, "\(r.stderr)")
    }
}

/// What the CLI hands the sandbox as stdin is never a descriptor of the host's.
@Suite("Attacks: stdin descriptors", .realSandboxes)
struct StdinAttackTests {
    @Test("a writable --stdin file is neither handed to the sandbox nor given to its user")
    func stdinFileIsNotHandedIn() async throws {
        let path = NSTemporaryDirectory() + "sbx-stdin-\(UUID().uuidString)"
        try "original".write(toFile: path, atomically: false, encoding: .utf8)
        chmod(path, 0o666)
        defer { unlink(path) }
        let r = try await Attack.sh("cat; echo; readlink /proc/self/fd/0; echo pwned > /proc/self/fd/0", stdin: .file(path))
        #expect(r.stdout.hasPrefix("original\npipe:"), "\(r.stdout)")
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "original")
        var st = stat()
        stat(path, &st)
        #expect(st.st_uid == 0, "the host file was handed to uid \(st.st_uid)")
    }

    @Test("with -i on a terminal, the sandbox cannot write to the operator's terminal")
    func terminalIsRelayed() async throws {
        let bin = try #require(CrashRecoveryTests.binary, "the sandboxer executable is not built")
        // script(1) gives the CLI a real terminal as stdin and records everything written to it.
        let cmd = "\(bin) run -i --json -- sh -c 'echo LEAKED-TO-TTY >&0; echo LEAKED-TO-TTY > /proc/self/fd/0; echo done'"
        let (t, out, err) = try await ChildProcess.run(["/usr/bin/script", "-qec", cmd, "/dev/null"])
        #expect(t == .exited(0), "\(out) \(err)")
        #expect(out.contains("done"), "\(out)")
        #expect(!out.contains("LEAKED"), "the sandbox wrote to the terminal: \(out)")
    }
}
