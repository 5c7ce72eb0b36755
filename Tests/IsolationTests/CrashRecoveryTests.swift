import Foundation
import SandboxTestSupport
import Testing
@testable import BackendOCI
@testable import SandboxCore
@testable import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

/// A sandboxer whose reaper is gone too (both killed with SIGKILL mid-run) leaves its sandbox
/// behind; `sandboxer gc` removes it.
@Suite("Crash recovery", .serialized, .realSandboxes)
struct CrashRecoveryTests {
    /// The `sandboxer` executable built next to the test bundle.
    static var binary: String? {
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [dir.appendingPathComponent("sandboxer"), dir.deletingLastPathComponent().appendingPathComponent("sandboxer")] {
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate.path }
        }
        let cwdBin = FileManager.default.currentDirectoryPath + "/.build/debug/sandboxer"
        return FileManager.default.isExecutableFile(atPath: cwdBin) ? cwdBin : nil
    }

    static func sandboxes(ownedBy pid: pid_t, stateDirectory: String) -> [String] {
        let dir = ContainerLayout.sandboxesDirectory(stateDirectory)
        return ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { id in
            SysFile.read(ContainerLayout(stateDirectory: stateDirectory, id: id).ownerFile)
                .flatMap(ContainerLayout.Owner.parse)?.pid == pid
        }
    }

    @Test("SIGKILL of the CLI and its reaper mid-run, then `sandboxer gc`: no cgroup, mount, runtime state or process is left")
    func killedCLIThenGC() async throws {
        let bin = try #require(Self.binary, "the sandboxer executable is not built")
        // A state directory of its own: other tests run `sandboxer run`, whose start-up gc would
        // otherwise collect this crashed sandbox before the assertions below look at it. It also
        // shows a sandboxer with another state directory never touches this one's sandboxes.
        let state = "/run/sandboxer-crash-test-\(getpid())"
        defer { SysFile.removeTree(state) }
        let env = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "SANDBOXER_STATE_DIR=\(state)"]
        let devnull = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { close(devnull) }
        let cli = try ChildProcess.spawn(
            [bin, "run", "--timeout", "60s", "--", "sh", "-c", "sleep 986531 & sleep 986532"],
            environment: env, stdin: devnull, stdout: devnull, stderr: devnull)
        var id: String?
        for _ in 0..<600 {  // up to 30 s: a debug build on a loaded CI machine starts slowly
            // The CLI's own argv holds the marker too: wait for a process of the sandbox.
            if let found = Self.sandboxes(ownedBy: cli.pid, stateDirectory: state).first,
               HostHealth.processes(matching: "986532").contains(where: { $0 != cli.pid }) { id = found; break }
            try await Task.sleep(for: .milliseconds(50))
        }
        let sandboxID = try #require(id, "the sandbox never started")
        // The reaper would remove the sandbox when the CLI dies (RunLifetimeTests): kill it first.
        for pid in HostHealth.processes(matching: "reap --state-dir \(state)") { kill(pid, SIGKILL) }
        kill(cli.pid, SIGKILL)
        _ = await cli.wait()
        try await Task.sleep(for: .milliseconds(200))

        // The crash left things behind, and start-up gc would notice …
        #expect(!HostHealth.leftovers(of: sandboxID, stateDirectory: state).isEmpty)
        #expect(!HostHealth.processes(matching: "986532").isEmpty)
        #expect(GarbageCollector(configuration: .init(stateDirectory: state)).hasLeftovers())

        // … a gc of the default state directory does not touch it (its cgroup is not empty) …
        _ = GarbageCollector(configuration: .init()).collect()
        #expect(!HostHealth.processes(matching: "986532").isEmpty)

        // … and its own gc removes it, without touching anything else.
        let (t, out, err) = try await ChildProcess.run([bin, "gc"], environment: env)
        #expect(t == .exited(0), "\(err)")
        #expect(out.contains(sandboxID))
        #expect(HostHealth.leftovers(of: sandboxID, stateDirectory: state) == [])
        // Killed processes leave their cgroup before they finish exiting: wait for that (bounded).
        try await HostHealth.waitUntil(tries: 100, every: .milliseconds(100)) { HostHealth.processes(matching: "98653").isEmpty }
        #expect(HostHealth.processes(matching: "98653").isEmpty)
        #expect(HostHealth.hostWorks())
    }

    @Test("gc never touches a sandbox whose owner is alive")
    func gcSparesLiveSandboxes() async throws {
        async let running = TestSandbox.sh("sleep 2; echo survived")
        try await Task.sleep(for: .milliseconds(800))
        let report = GarbageCollector(configuration: .init()).collect()
        let r = try await running
        #expect(r.stdout == "survived\n")
        #expect(!report.sandboxes.contains(r.sandboxId) && !report.cgroups.contains(r.sandboxId))
    }
}
