import Foundation
import SandboxCore
import SandboxManager
import SandboxStore
import SandboxTestSupport
import Testing

/// A delete that does not wait for the teardown (`DELETE …?wait=false`, what `run --server` sends
/// after its exec): the sandbox is `stopping` at once and the server finishes removing it.
@Suite(.serialized) struct ManagerDeleteNoWaitTests {
    @Test("a delete that does not wait returns the sandbox stopping; it takes no more calls; the teardown ends it destroyed with nothing left", .realSandboxes)
    func stoppingAtOnceDestroyedAfter() async throws {
        try await ManagerFixture.with { f in
            try await f.manager.start()
            let s = try await f.manager.create(tenantId: f.tenant.id, ManagerFixture.request, actor: "test")
            _ = try await f.manager.startProcess(tenantId: f.tenant.id, id: s.id, ExecRequest(argv: ["sleep", "986734"]),
                                                 options: ProcessOptions(background: true), actor: "test")
            let stopping = try await f.manager.destroy(tenantId: f.tenant.id, id: s.id, actor: "test", wait: false)
            #expect(stopping.state == .stopping)
            // Whether its teardown is still under way or already over, the sandbox runs nothing more.
            await #expect(throws: SandboxError.self) {
                _ = try await f.manager.exec(tenantId: f.tenant.id, id: s.id, ExecRequest(argv: ["true"]), actor: "test", output: nil)
            }
            // A delete that waits returns when the teardown is over, with the final record.
            let gone = try await f.manager.destroy(tenantId: f.tenant.id, id: s.id, actor: "test")
            #expect(gone.state == .destroyed && gone.reason == "deleted by test", "\(gone.state) \(gone.reason ?? "")")
            #expect(try await f.store.sandbox(id: s.id)?.state == .destroyed)
            #expect(HostHealth.leftovers(of: s.id, stateDirectory: f.manager.configuration.stateDirectory).isEmpty)
            #expect(HostHealth.processes(matching: "986734").isEmpty)
            let kinds = try await f.manager.auditTrail(tenantId: f.tenant.id, id: s.id).map(\.kind)
            #expect(kinds.filter { $0 == .sandboxDelete }.count == 1, "\(kinds)")
        }
    }

    @Test("at max_sandboxes = 1, a create right after a delete that did not wait waits for that teardown instead of a 429", .realSandboxes)
    func createWaitsForTheTenantsOwnTeardowns() async throws {
        try await ManagerFixture.with { f in
            try await f.store.setQuota(tenantId: f.tenant.id, QuotaOverrides(maxSandboxes: 1))
            try await f.manager.start()
            var previous = try await f.manager.create(tenantId: f.tenant.id, ManagerFixture.request, actor: "test").id
            for _ in 0..<3 {
                #expect(try await f.manager.destroy(tenantId: f.tenant.id, id: previous, actor: "test", wait: false).state == .stopping)
                let next = try await f.manager.create(tenantId: f.tenant.id, ManagerFixture.request, actor: "test")
                #expect(next.state == .running)
                // The create counted the sandbox until its teardown ended: it is destroyed by now.
                #expect(try await f.store.sandbox(id: previous)?.state == .destroyed)
                previous = next.id
            }
            // A live sandbox still stands in the way.
            await #expect(throws: SandboxError.self) {
                _ = try await f.manager.create(tenantId: f.tenant.id, ManagerFixture.request, actor: "test")
            }
        }
    }

    @Test("a server that shuts down finishes the teardowns nobody waited for", .realSandboxes)
    func shutdownFinishesTeardowns() async throws {
        try await ManagerFixture.with { f in
            try await f.manager.start()
            var ids: [String] = []
            for _ in 0..<3 { ids.append(try await f.manager.create(tenantId: f.tenant.id, ManagerFixture.request, actor: "test").id) }
            for id in ids {
                #expect(try await f.manager.destroy(tenantId: f.tenant.id, id: id, actor: "test", wait: false).state == .stopping)
            }
            await f.manager.shutdown()
            for id in ids {
                #expect(try await f.store.sandbox(id: id)?.state == .destroyed)
                #expect(HostHealth.leftovers(of: id, stateDirectory: f.manager.configuration.stateDirectory).isEmpty)
            }
            #expect(await f.backend.list().isEmpty)
        }
    }
}
