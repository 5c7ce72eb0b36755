import BackendOCI
import Foundation
import SandboxCore
import SandboxLinux
import SandboxManager
import SandboxStore
import SandboxTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Restart, lost agents, cancellation, the warm pool and events, on real container sandboxes.
@Suite(.serialized) struct ManagerRecoveryTests {
    @Test(.realSandboxes) func restartAdoptsWhatAnswersAndCollectsTheRest() async throws {
        let f1 = try await ManagerFixture.make()
        try await f1.manager.start()
        let kept = try await f1.manager.create(tenantId: f1.tenant.id, ManagerFixture.request, actor: "test")
        let killed = try await f1.manager.create(tenantId: f1.tenant.id, ManagerFixture.request, actor: "test")
        _ = try await f1.manager.writeFile(tenantId: f1.tenant.id, id: kept.id, path: "/workspace/note", data: Array("kept".utf8), actor: "test")
        await f1.manager.shutdown()   // the sandboxes stay up, as after a crash
        // While no server runs: one sandbox's processes die; an unrecorded one appears.
        let killedId = killed.id
        await BlockingPool.shared.run { SandboxCgroup(id: killedId, host: CgroupHost.detect()).killAll() }
        let orphan = try await f1.backend.create(SandboxSpec(profile: TestSandbox.profile()))

        let f2 = try await ManagerFixture.make(directory: f1.directory)
        do {
            let report = try await f2.manager.start()
            #expect(report.adopted == [kept.id])
            #expect(report.lost == [killed.id])
            #expect(report.orphans == [orphan.id])
            let lost = try await f2.manager.get(tenantId: f2.tenant.id, id: killed.id)
            #expect(lost.state == .lost && lost.reason?.contains("did not answer") == true)
            #expect(HostHealth.leftovers(of: killed.id, stateDirectory: f2.manager.configuration.stateDirectory).isEmpty)
            #expect(HostHealth.leftovers(of: orphan.id, stateDirectory: f2.manager.configuration.stateDirectory).isEmpty)
            let data = try await f2.manager.readFile(tenantId: f2.tenant.id, id: kept.id, path: "/workspace/note")
            #expect(data == Array("kept".utf8))
            let r = try await f2.manager.exec(tenantId: f2.tenant.id, id: kept.id, ExecRequest(argv: ["cat", "/workspace/note"]), actor: "t", output: nil)
            #expect(r.stdout == "kept")
        } catch {
            await f2.finish()
            throw error
        }
        await f2.finish()
    }

    @Test(.realSandboxes) func aDeadAgentMakesTheSandboxLostAndCallsFailAtOnce() async throws {
        try await ManagerFixture.with(healthInterval: .milliseconds(200)) { f in
            try await f.manager.start()
            let s = try await f.manager.create(tenantId: f.tenant.id, ManagerFixture.request, actor: "test")
            let exec = Task { try await f.manager.exec(tenantId: f.tenant.id, id: s.id, ExecRequest(argv: ["sleep", "30"]), actor: "t", output: nil) }
            try await Task.sleep(for: .milliseconds(300))
            let sid = s.id
            await BlockingPool.shared.run { SandboxCgroup(id: sid, host: CgroupHost.detect()).killAll() }
            let started = Date()
            do {
                let r = try await exec.value
                #expect(r.outcome != .ok, "the exec ended \(r.outcome) although its sandbox was killed")
            } catch let e as SandboxError {
                #expect(e.code == .sandboxLost)
            }
            #expect(Date().timeIntervalSince(started) < 25, "waited for the exec's own 30 s end (a bound, not a speed test)")
            try await ManagerLifecycleTests.waitUntil { (try? await f.manager.get(tenantId: f.tenant.id, id: s.id).state) == .lost }
            // The record says lost first; its leftovers are collected right after (a bound, not a speed test).
            let state = f.manager.configuration.stateDirectory
            try await ManagerLifecycleTests.waitUntil { HostHealth.leftovers(of: s.id, stateDirectory: state).isEmpty }
            #expect(HostHealth.leftovers(of: s.id, stateDirectory: state).isEmpty)
        }
    }

    @Test(.realSandboxes) func cancellingAnExecKillsItsProcess() async throws {
        try await ManagerFixture.with { f in
            try await f.manager.start()
            let s = try await f.manager.create(tenantId: f.tenant.id, ManagerFixture.request, actor: "test")
            let exec = Task {
                try await f.manager.exec(tenantId: f.tenant.id, id: s.id, ExecRequest(argv: ["sh", "-c", "echo started; exec sleep 30"]), actor: "t", output: nil)
            }
            try await Task.sleep(for: .milliseconds(500))
            exec.cancel()
            let r = try await exec.value
            #expect(r.outcome == .cancelled)
            let ps = try await f.manager.exec(tenantId: f.tenant.id, id: s.id, ExecRequest(argv: ["sh", "-c", "ps -eo comm | grep -c '^sleep$' || true"]), actor: "t", output: nil)
            #expect(ps.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "0")
        }
    }

    @Test(.realSandboxes) func theWarmPoolHandsOutReadySandboxesAndRefills() async throws {
        try await ManagerFixture.with(warmPool: ["default": 2]) { f in
            try await f.manager.start()
            try await ManagerLifecycleTests.waitUntil { await f.manager.poolSizes["default"] == 2 }
            let a = try await f.manager.create(tenantId: f.tenant.id, CreateSandboxRequest(profile: .named("default"), env: ["WHO": "pool"]), actor: "t")
            #expect(a.state == .running)
            let r = try await f.manager.exec(tenantId: f.tenant.id, id: a.id, ExecRequest(argv: ["sh", "-c", "echo $WHO"]), actor: "t", output: nil)
            #expect(r.stdout == "pool\n")
            try await ManagerLifecycleTests.waitUntil { await f.manager.poolSizes["default"] == 2 }
            await f.manager.shutdown()
            // Pool sandboxes have no tenant: a shutdown destroys them; the handed-out one lives on.
            #expect(await f.backend.list() == [a.id])
        }
    }

    @Test(.realSandboxes) func eventsFollowCreateExecAndDestroy() async throws {
        try await ManagerFixture.with { f in
            try await f.manager.start()
            let events = f.manager.events(tenantId: f.tenant.id)
            let s = try await f.manager.create(tenantId: f.tenant.id, ManagerFixture.request, actor: "test")
            _ = try await f.manager.exec(tenantId: f.tenant.id, id: s.id, ExecRequest(argv: ["true"]), actor: "t", output: nil)
            _ = try await f.manager.destroy(tenantId: f.tenant.id, id: s.id, actor: "t")
            var kinds: [SandboxLifecycleEvent.Kind] = []
            for await e in events {
                kinds.append(e.type)
                if e.type == .sandboxDestroyed { break }
            }
            #expect(kinds == [.sandboxCreated, .execStarted, .execEnded, .sandboxDestroyed])
        }
    }
}
