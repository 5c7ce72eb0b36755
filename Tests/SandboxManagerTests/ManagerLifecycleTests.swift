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

/// The manager's state machine, records, tenants, TTL and quotas, on real container sandboxes.
@Suite(.serialized) struct ManagerLifecycleTests {
    @Test(.realSandboxes) func createExecDestroyIsRecordedAtEachStep() async throws {
        try await ManagerFixture.with { f in
            try await f.manager.start()
            let created = try await f.manager.create(tenantId: f.tenant.id, Self.req(), actor: "test")
            #expect(created.state == .running)
            #expect(try await f.store.sandbox(id: created.id)?.state == .running)

            let out = OutputBox()
            let r = try await f.manager.exec(tenantId: f.tenant.id, id: created.id, ExecRequest(argv: ["sh", "-c", "echo hi; exit 3"]),
                                             actor: "test", output: { _, b in out.add(b) })
            #expect(r.outcome == .exitNonzero && r.exitCode == 3 && r.stdout == "hi\n")
            #expect(out.text == "hi\n")

            let gone = try await f.manager.destroy(tenantId: f.tenant.id, id: created.id, actor: "test")
            #expect(gone.state == .destroyed && gone.reason == "deleted by test")
            let stored = try #require(try await f.store.sandbox(id: created.id))
            #expect(stored.state == .destroyed && stored.execCount == 1)
            let execs = try await f.store.execs(sandboxId: created.id, limit: 10)
            #expect(execs.count == 1 && execs.first?.outcome == .exitNonzero)
            #expect(try await f.store.log(execId: execs[0].id, stream: .stdout) == Array("hi\n".utf8))
            #expect(HostHealth.leftovers(of: created.id, stateDirectory: f.manager.configuration.stateDirectory).isEmpty)
            // Deleting again returns the final record.
            #expect(try await f.manager.destroy(tenantId: f.tenant.id, id: created.id, actor: "test").state == .destroyed)
        }
    }

    @Test(.realSandboxes) func anotherTenantGetsNotFoundForEverything() async throws {
        try await ManagerFixture.with { f in
            try await f.manager.start()
            let other = try await f.store.ensureTenant(name: "other")
            let mine = try await f.manager.create(tenantId: f.tenant.id, Self.req(), actor: "test")
            for call in [
                { _ = try await f.manager.get(tenantId: other.id, id: mine.id) },
                { _ = try await f.manager.exec(tenantId: other.id, id: mine.id, ExecRequest(argv: ["true"]), actor: "x", output: nil) },
                { _ = try await f.manager.destroy(tenantId: other.id, id: mine.id, actor: "x") },
                { _ = try await f.manager.readFile(tenantId: other.id, id: mine.id, path: "/etc/passwd") },
            ] as [@Sendable () async throws -> Void] {
                await #expect(throws: SandboxError.self) { try await call() }
                do { try await call() } catch let e as SandboxError { #expect(e.code == .notFound) }
            }
            #expect(try await f.manager.list(SandboxQuery(tenantId: other.id)).items.isEmpty)
            #expect(try await f.manager.get(tenantId: f.tenant.id, id: mine.id).state == .running)
        }
    }

    @Test(.realSandboxes) func ttlAndIdleTimeoutDestroyWithAReason() async throws {
        try await ManagerFixture.with { f in
            try await f.manager.start()
            var shortTTL = Self.req()
            shortTTL.ttl = .seconds(1)
            let a = try await f.manager.create(tenantId: f.tenant.id, shortTTL, actor: "test")
            var idle = Self.req()
            idle.idleTimeout = .seconds(1)
            let b = try await f.manager.create(tenantId: f.tenant.id, idle, actor: "test")
            try await Self.waitUntil {
                let sa = try? await f.manager.get(tenantId: f.tenant.id, id: a.id).state
                let sb = try? await f.manager.get(tenantId: f.tenant.id, id: b.id).state
                return sa == .destroyed && sb == .destroyed
            }
            #expect(try await f.manager.get(tenantId: f.tenant.id, id: a.id).reason == "ttl expired")
            #expect(try await f.manager.get(tenantId: f.tenant.id, id: b.id).reason?.hasPrefix("idle") == true)
            #expect(HostHealth.leftovers(of: a.id, stateDirectory: f.manager.configuration.stateDirectory).isEmpty)
            // Extending a TTL keeps a sandbox alive past its first deadline.
            // (3 s, not 1: a create on a loaded machine can take longer than a second.)
            var threeSeconds = Self.req()
            threeSeconds.ttl = .seconds(3)
            let created = Date()
            let c = try await f.manager.create(tenantId: f.tenant.id, threeSeconds, actor: "test")
            _ = try await f.manager.setTimeout(tenantId: f.tenant.id, id: c.id, ttl: .seconds(60), actor: "test")
            try await Task.sleep(for: .seconds(max(0.5, 3.5 - Date().timeIntervalSince(created))))
            #expect(try await f.manager.get(tenantId: f.tenant.id, id: c.id).state == .running)
        }
    }

    @Test(.realSandboxes) func quotasRefuseWithRetryAfter() async throws {
        try await ManagerFixture.with { f in
            try await f.store.setQuota(tenantId: f.tenant.id, QuotaOverrides(maxSandboxes: 1, execsPerMinute: 2))
            try await f.manager.start()
            let one = try await f.manager.create(tenantId: f.tenant.id, Self.req(), actor: "test")
            do {
                _ = try await f.manager.create(tenantId: f.tenant.id, Self.req(), actor: "test")
                Issue.record("a second sandbox was created over max_sandboxes = 1")
            } catch let e as SandboxError {
                #expect(e.code == .quotaExceeded && e.retryAfterSeconds != nil && e.message.contains("max_sandboxes"))
            }
            for _ in 0..<2 { _ = try await f.manager.exec(tenantId: f.tenant.id, id: one.id, ExecRequest(argv: ["true"]), actor: "t", output: nil) }
            do {
                _ = try await f.manager.exec(tenantId: f.tenant.id, id: one.id, ExecRequest(argv: ["true"]), actor: "t", output: nil)
                Issue.record("a third exec ran over execs_per_minute = 2")
            } catch let e as SandboxError {
                #expect(e.code == .quotaExceeded && (e.retryAfterSeconds ?? 0) >= 1)
            }
        }
    }

    @Test("50 concurrent creates at max_sandboxes = 5 make exactly 5 sandboxes (the quota is held before the first await)", .realSandboxes)
    func concurrentCreatesStayWithinTheQuota() async throws {
        try await ManagerFixture.with { f in
            try await f.store.setQuota(tenantId: f.tenant.id, QuotaOverrides(maxSandboxes: 5))
            try await f.manager.start()
            let outcomes = await withTaskGroup(of: Result<SandboxRecord, any Error>.self) { group in
                for _ in 0..<50 {
                    group.addTask {
                        do { return .success(try await f.manager.create(tenantId: f.tenant.id, Self.req(), actor: "test")) } catch {
                            return .failure(error)
                        }
                    }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
            let created = outcomes.compactMap { try? $0.get() }
            let refused = outcomes.compactMap { r -> SandboxError? in if case .failure(let e) = r { return e as? SandboxError }; return nil }
            #expect(created.count == 5)
            #expect(refused.count == 45 && refused.allSatisfy { $0.code == .quotaExceeded })
            for r in created { try await f.manager.destroy(tenantId: f.tenant.id, id: r.id, actor: "test") }
            // Holds are released: the quota is whole again.
            let again = try await f.manager.create(tenantId: f.tenant.id, Self.req(), actor: "test")
            try await f.manager.destroy(tenantId: f.tenant.id, id: again.id, actor: "test")
        }
    }

    @Test(.realSandboxes) func unknownProfileNamesTheKnownOnes() async throws {
        try await ManagerFixture.with { f in
            try await f.manager.start()
            do {
                _ = try await f.manager.create(tenantId: f.tenant.id, CreateSandboxRequest(profile: .named("nope")), actor: "test")
                Issue.record("created with an unknown profile")
            } catch let e as SandboxError {
                #expect(e.code == .notFound && e.message.contains("default") && e.message.contains("bounty"))
            }
        }
    }

    static func req() -> CreateSandboxRequest { ManagerFixture.request }

    static func waitUntil(seconds: Double = 15, _ done: @Sendable () async -> Bool) async throws {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if await done() { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("condition not met within \(seconds) s")
    }
}
