import BackendOCI
import Foundation
import SandboxCore
import SandboxLinux
import SandboxTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Agent: adopt, gc, agent death, collect", .realSandboxes)
struct AgentLifetimeTests {
    @Test("another backend adopts a sandbox after its creator's client is gone; gc leaves it alone")
    func adopt() async throws {
        let spec = SandboxSpec(profile: TestSandbox.profile())
        do {
            let creator = try TestSandbox.backend()
            let box = try await creator.create(spec)
            _ = try await creator.exec(box, ExecRequest(argv: ["sh", "-c", "echo kept > /workspace/f"]), output: nil)
        }
        let gc = GarbageCollector(configuration: .init()).collect()
        #expect(!gc.sandboxes.contains(spec.id), "gc must leave managed sandboxes to their manager")
        let backend = try TestSandbox.backend()
        #expect(await backend.list().contains(spec.id))
        let box = try await backend.adopt(spec)
        let r = try await backend.exec(box, ExecRequest(argv: ["cat", "/workspace/f"]), output: nil)
        #expect(r.stdout == "kept\n")
        await backend.collect(id: spec.id)
        #expect(HostHealth.leftovers(of: spec.id) == [])
        #expect(!(await backend.list().contains(spec.id)))
        do {
            _ = try await backend.adopt(spec)
            Issue.record("adopted a collected sandbox")
        } catch let e as SandboxError {
            #expect(e.code == .sandboxLost)
        }
    }

    @Test("a host workspace is seeded at create, locked while the sandbox lives, and copied back at destroy")
    func workspace() async throws {
        let dir = NSTemporaryDirectory() + "sbx-agent-ws-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data("seed\n".utf8).write(to: URL(fileURLWithPath: dir + "/in.txt"))
        let backend = try TestSandbox.backend()
        let box = try await backend.create(SandboxSpec(profile: TestSandbox.profile(), workspaceDirectory: dir))
        let r = try await backend.exec(box, ExecRequest(argv: ["sh", "-c", "cat in.txt; echo made > out.txt"]), output: nil)
        #expect(r.stdout == "seed\n")
        await #expect(throws: SandboxError.self) {
            try await backend.create(SandboxSpec(profile: TestSandbox.profile(), workspaceDirectory: dir))
        }
        try await backend.destroy(box)
        #expect((try? String(contentsOfFile: dir + "/out.txt", encoding: .utf8)) == "made\n")
        #expect(HostHealth.leftovers(of: box.id) == [])
    }

    @Test("kill -9 of the agent from the host: waiting calls fail with sandbox_lost at once; collect leaves nothing")
    func agentDeath() async throws {
        let backend = try TestSandbox.backend()
        let box = try await backend.create(SandboxSpec(profile: TestSandbox.profile()))
        let layout = ContainerLayout(stateDirectory: backend.configuration.stateDirectory, id: box.id)
        let pidText = try #require(SysFile.read(layout.pidFile))
        let agentPid = try #require(Int32(pidText.trimmingCharacters(in: .whitespacesAndNewlines)))
        let waiting = Task { try await Live.sh(backend, box, "sleep 986651") }
        let bg = try await backend.startProcess(box, ExecRequest(argv: ["sleep", "986652"]), options: ProcessOptions())
        let following = Task { try await backend.connect(box, pid: bg.pid, output: nil) }
        try await Task.sleep(for: .milliseconds(500))
        let t0 = ContinuousClock.now
        kill(agentPid, SIGKILL)
        for task in [waiting, following] {
            do {
                let r = try await task.value
                Issue.record("a waiting call returned \(r.outcome) instead of failing")
            } catch let e as SandboxError {
                #expect(e.code == .sandboxLost, "\(e)")
            }
        }
        // "At once" means not waiting for the exec's own 30 s deadline; a bound, not a speed requirement.
        #expect(ContinuousClock.now - t0 < .seconds(20))
        do {
            _ = try await backend.exec(box, ExecRequest(argv: ["true"]), output: nil)
            Issue.record("exec on a dead agent succeeded")
        } catch let e as SandboxError {
            #expect(e.code == .sandboxLost)
        }
        await #expect(throws: SandboxError.self) { try await backend.adopt(box.spec) }
        await backend.collect(id: box.id)
        #expect(HostHealth.leftovers(of: box.id) == [])
        #expect(HostHealth.processes(matching: "98665").isEmpty)
    }
}
