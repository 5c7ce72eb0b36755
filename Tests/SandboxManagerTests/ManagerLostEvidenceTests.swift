import BackendOCI
import Foundation
import SandboxCore
import SandboxLinux
@testable import SandboxManager
import SandboxStore
import SandboxTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// "lost" destroys a sandbox, so it takes positive evidence (issue 17, item 1): a health check or
/// call that merely fails to reach the agent — as when the server is out of descriptors under a
/// connection flood — fails that call with a retryable `unavailable` and keeps the sandbox.
@Suite(.serialized) struct ManagerLostEvidenceTests {
    @Test(.realSandboxes) func anAgentThatCannotBeReachedButLivesIsNotLost() async throws {
        try await ManagerFixture.with { f in
            try await f.manager.start()
            let s = try await f.manager.create(tenantId: f.tenant.id, ManagerFixture.request, actor: "test")
            let layout = ContainerLayout(stateDirectory: f.manager.configuration.stateDirectory, id: s.id)
            let socket = layout.agentDirectory + "/agent.sock", away = layout.agentDirectory + "/agent.sock.away"
            // Every connection to the agent now fails (as open() does under EMFILE); its process lives.
            #expect(rename(socket, away) == 0)
            // The open connection goes too (as when the agent's socket drops): calls must connect anew.
            f.backend.agents.close(s.id)
            await f.manager.checkHealth()
            #expect(try await f.manager.get(tenantId: f.tenant.id, id: s.id).state == .running)
            do {
                _ = try await f.manager.exec(tenantId: f.tenant.id, id: s.id, ExecRequest(argv: ["true"]), actor: "t", output: nil)
                Issue.record("an exec reached an agent whose socket was moved away")
            } catch let e as SandboxError {
                #expect(e.code == .unavailable, "\(e)")
                #expect(e.retryAfterSeconds != nil)
            }
            do {
                _ = try await f.manager.readFile(tenantId: f.tenant.id, id: s.id, path: "/etc/hostname")
                Issue.record("a file read reached an agent whose socket was moved away")
            } catch let e as SandboxError {
                #expect(e.code == .unavailable, "\(e)")
            }
            #expect(try await f.manager.get(tenantId: f.tenant.id, id: s.id).state == .running)

            // Reachable again: the very same sandbox answers.
            #expect(rename(away, socket) == 0)
            let r = try await f.manager.exec(tenantId: f.tenant.id, id: s.id, ExecRequest(argv: ["echo", "still here"]), actor: "t", output: nil)
            #expect(r.stdout == "still here\n")

            // Positive evidence: its processes are gone. Now the health check makes it lost.
            let sid = s.id
            await BlockingPool.shared.run { SandboxCgroup(id: sid, host: CgroupHost.detect()).killAll() }
            try await ManagerLifecycleTests.waitUntil { await f.backend.isGone(id: s.id) }
            await f.manager.checkHealth()
            let lost = try await f.manager.get(tenantId: f.tenant.id, id: s.id)
            #expect(lost.state == .lost, "\(lost.state)")
        }
    }
}
