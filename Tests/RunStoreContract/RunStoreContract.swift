import Foundation
import SandboxCore
import SandboxStore
import Testing

/// What a test of one engine provides: a store, and a second instance on the same data (a second
/// node of the fleet, or a second process on the same SQLite file).
public struct StoreFixture<Store: Sendable>: Sendable {
    public let store: Store
    public let second: @Sendable () async throws -> Store
    public init(store: Store, second: @escaping @Sendable () async throws -> Store) {
        self.store = store
        self.second = second
    }
}

/// The run-queue contract's fixture.
public typealias RunStoreFixture = StoreFixture<any RunStore>

/// The run-queue contract (see ``RunStore``) as checks every engine must pass; each engine's test
/// suite runs every case of ``cases`` on a fresh store.
public enum RunStoreContract {
    public typealias Case = @Sendable (RunStoreFixture) async throws -> Void

    public static let cases: [String: Case] = [
        "submit, get and list newest first with filters and a cursor": submitGetList,
        "an idempotency key returns the first run, also when two nodes submit at once": idempotency,
        "a full queue refuses with quota_exceeded and keeps what it accepted": queueQuota,
        "two nodes claiming at once claim every run exactly once": exclusiveClaims,
        "one tenant's 200 queued runs do not starve another tenant's single run": fairness,
        "a tenant at its cap is skipped; higher priority goes first": capAndPriority,
        "results are final; infrastructure failures retry with backoff, then dead with every reason": outcomes,
        "an expired lease requeues the run as worker_lost and fences the old worker out": leaseExpiry,
        "cancel: queued at once, running through the worker, finished refused, other tenant not found": cancel,
        "retry of a finished run queues one more attempt": retry,
        "a claimed run handed back is queued again, due later, its unstarted attempt not counted": handBack,
        "logs keep their order and the head up to the cap": logs,
        "webhooks: pending when the run ends, claimed once, delivered or failed": webhooks,
        "webhook claims hold a tenant to its cap and skip a full tenant's backlog": webhookTenantCap,
        "stats count ends per minute and what is queued and running": stats,
        "changes are announced to subscribers": changes,
        "what an attempt ran on and a replay's link are stored whole and read back by another node": replayRecords,
    ]

    public static var names: [String] { cases.keys.sorted() }

    // MARK: Helpers

    public static func newRun(_ tenant: String = "tnt_a", priority: Int = 0, maxAttempts: Int = 3, labels: [String: String] = [:],
                              key: String? = nil, createdAt: Date = Date(), webhook: RunWebhook? = nil) -> RunRecord {
        RunRecord(
            id: "run-" + UUID().uuidString.lowercased().prefix(12), tenantId: tenant,
            spec: RunSpec(profile: .default, argv: ["/bin/true"], code: Array("print(1)".utf8), codeFileName: "main.py", lang: "python",
                          stdin: [0, 1, 0xFF], env: ["A": "1"]),
            priority: priority, maxAttempts: maxAttempts, labels: labels, idempotencyKey: key, createdAt: createdAt, webhook: webhook)
    }

    @discardableResult
    static func submit(_ store: any RunStore, _ run: RunRecord, maxQueued: Int = 10_000) async throws -> RunRecord {
        try await store.submitRun(run, maxQueued: maxQueued).run
    }

    static let fast = RetryPolicy(base: .milliseconds(1), max: .milliseconds(5), jitter: 0.5)
    static func ok(_ id: String = "sbx-1", exit: Int32 = 0) -> ExecResult {
        ExecResult(sandboxId: id, outcome: exit == 0 ? .ok : .exitNonzero, exitCode: exit, signal: nil, stdout: "out\n", stderr: "")
    }

    // MARK: Cases

    static func submitGetList(_ f: RunStoreFixture) async throws {
        let s = f.store
        let t0 = Date().addingTimeInterval(-100)
        let a = try await submit(s, newRun(labels: ["job": "x"], createdAt: t0))
        let b = try await submit(s, newRun(labels: ["job": "y"], createdAt: t0.addingTimeInterval(10)))
        let c = try await submit(s, newRun(labels: ["job": "x", "k": "v"], createdAt: t0.addingTimeInterval(20)))
        _ = try await submit(s, newRun("tnt_b"))
        let got = try #require(try await s.run(id: a.id))
        #expect(got == a)
        #expect(got.spec.stdin == [0, 1, 0xFF] && got.spec.code == Array("print(1)".utf8))
        let all = try await s.runs(RunQuery(tenantId: "tnt_a"))
        #expect(all.items.map(\.id) == [c.id, b.id, a.id])
        #expect(try await s.runs(RunQuery(tenantId: "tnt_a", labels: ["job": "x"])).items.map(\.id) == [c.id, a.id])
        #expect(try await s.runs(RunQuery(tenantId: "tnt_a", since: t0.addingTimeInterval(5))).items.map(\.id) == [c.id, b.id])
        #expect(try await s.runs(RunQuery(tenantId: "tnt_a", states: [.running])).items.isEmpty)
        let p1 = try await s.runs(RunQuery(tenantId: "tnt_a", limit: 2))
        #expect(p1.items.map(\.id) == [c.id, b.id])
        let p2 = try await s.runs(RunQuery(tenantId: "tnt_a", cursor: try #require(p1.nextCursor), limit: 2))
        #expect(p2.items.map(\.id) == [a.id] && p2.nextCursor == nil)
        #expect(try await s.run(id: "run-none") == nil)
    }

    static func idempotency(_ f: RunStoreFixture) async throws {
        let first = try await f.store.submitRun(newRun(key: "k1"), maxQueued: 100)
        let again = try await f.store.submitRun(newRun(key: "k1"), maxQueued: 100)
        #expect(first.created && !again.created && again.run.id == first.run.id)
        // The same key of another tenant is another run.
        #expect(try await f.store.submitRun(newRun("tnt_b", key: "k1"), maxQueued: 100).created)
        let other = try await f.second()
        let s1 = f.store
        async let x = s1.submitRun(newRun(key: "k2"), maxQueued: 100)
        async let y = other.submitRun(newRun(key: "k2"), maxQueued: 100)
        let (rx, ry) = try await (x, y)
        #expect(rx.run.id == ry.run.id && rx.created != ry.created)
        #expect(try await f.store.runs(RunQuery(tenantId: "tnt_a")).items.count == 2)
    }

    static func queueQuota(_ f: RunStoreFixture) async throws {
        try await submit(f.store, newRun(), maxQueued: 2)
        try await submit(f.store, newRun(), maxQueued: 2)
        do {
            try await submit(f.store, newRun(), maxQueued: 2)
            Issue.record("a third run was accepted past max_queued 2")
        } catch let e as SandboxError {
            #expect(e.code == .quotaExceeded && (e.retryAfterSeconds ?? 0) > 0 && e.message.contains("2"), "\(e)")
        }
        #expect(try await f.store.runs(RunQuery(tenantId: "tnt_a")).items.count == 2)
        // Another tenant has its own queue.
        try await submit(f.store, newRun("tnt_b"), maxQueued: 2)
    }

    static func exclusiveClaims(_ f: RunStoreFixture) async throws {
        for _ in 0..<60 { try await submit(f.store, newRun()) }
        let other = try await f.second()
        let s1 = f.store
        async let a = drain(s1, "w1")
        async let b = drain(other, "w2")
        let (ca, cb) = try await (a, b)
        #expect(ca.count + cb.count == 60)
        #expect(Set(ca).intersection(Set(cb)).isEmpty)
        #expect(Set(ca + cb).count == 60)
    }

    static func drain(_ s: any RunStore, _ worker: String) async throws -> [String] {
        var ids: [String] = []
        while true {
            let got = try await s.claimRuns(worker: worker, limit: 3, tenantCap: 1000, lease: .seconds(30))
            if got.isEmpty { return ids }
            for r in got {
                #expect(r.state == .running && r.lease?.worker == worker && r.attempts.last?.worker == worker)
            }
            ids += got.map(\.id)
        }
    }

    static func fairness(_ f: RunStoreFixture) async throws {
        let t0 = Date().addingTimeInterval(-60)
        for i in 0..<200 { try await submit(f.store, newRun("tnt_a", createdAt: t0.addingTimeInterval(Double(i) * 0.01))) }
        let single = try await submit(f.store, newRun("tnt_b"))
        // The first claim goes to A (its runs are older); the second to B, whose one run is not
        // behind A's 199 others.
        let first = try await f.store.claimRuns(worker: "w", limit: 1, tenantCap: 1000, lease: .seconds(30))
        let second = try await f.store.claimRuns(worker: "w", limit: 1, tenantCap: 1000, lease: .seconds(30))
        #expect(first.map(\.tenantId) == ["tnt_a"])
        #expect(second.map(\.id) == [single.id])
    }

    static func capAndPriority(_ f: RunStoreFixture) async throws {
        let t0 = Date().addingTimeInterval(-60)
        var low: [RunRecord] = []
        for i in 0..<3 { low.append(try await submit(f.store, newRun(priority: 0, createdAt: t0.addingTimeInterval(Double(i))))) }
        let high = try await submit(f.store, newRun(priority: 5, createdAt: t0.addingTimeInterval(30)))
        let got = try await f.store.claimRuns(worker: "w", limit: 10, tenantCap: 2, lease: .seconds(30))
        #expect(got.map(\.id) == [high.id, low[0].id])
        #expect(try await f.store.claimRuns(worker: "w", limit: 10, tenantCap: 2, lease: .seconds(30)).isEmpty)
        _ = try await f.store.finishAttempt(runId: high.id, worker: "w", AttemptEnd(outcome: .succeeded, result: ok()), policy: fast)
        #expect(try await f.store.claimRuns(worker: "w", limit: 10, tenantCap: 2, lease: .seconds(30)).map(\.id) == [low[1].id])
    }

    static func outcomes(_ f: RunStoreFixture) async throws {
        let s = f.store
        let good = try await submit(s, newRun())
        let bad = try await submit(s, newRun())
        let flaky = try await submit(s, newRun(maxAttempts: 2))
        _ = try await s.claimRuns(worker: "w", limit: 3, tenantCap: 100, lease: .seconds(30))
        let g = try #require(try await s.finishAttempt(runId: good.id, worker: "w", AttemptEnd(outcome: .succeeded, result: ok()), policy: fast))
        #expect(g.state == .succeeded && g.result?.stdout == "out\n" && g.endedAt != nil && g.lease == nil)
        let b = try #require(try await s.finishAttempt(
            runId: bad.id, worker: "w", AttemptEnd(outcome: .failed, reason: "exit 3", result: ok(exit: 3)), policy: fast))
        #expect(b.state == .failed && b.attempts.count == 1 && b.attempts[0].outcome == .failed)
        let r1 = try #require(try await s.finishAttempt(
            runId: flaky.id, worker: "w", AttemptEnd(outcome: .setupFailed, reason: "crun said no"), policy: fast))
        #expect(r1.state == .queued && r1.notBefore > r1.attempts[0].endedAt!.addingTimeInterval(-0.001))
        #expect(r1.attempts[0].outcome == .setupFailed && r1.attempts[0].reason == "crun said no")
        try await Task.sleep(for: .milliseconds(20))
        let again = try await s.claimRuns(worker: "w2", limit: 3, tenantCap: 100, lease: .seconds(30))
        #expect(again.map(\.id) == [flaky.id] && again.first?.attempts.count == 2)
        let dead = try #require(try await s.finishAttempt(
            runId: flaky.id, worker: "w2", AttemptEnd(outcome: .agentLost, reason: "agent gone"), policy: fast))
        #expect(dead.state == .dead)
        #expect(dead.reason?.contains("crun said no") == true && dead.reason?.contains("agent gone") == true, "\(dead.reason ?? "")")
        // A finished run cannot be finished again.
        #expect(try await s.finishAttempt(runId: good.id, worker: "w", AttemptEnd(outcome: .failed), policy: fast) == nil)
    }

    static func leaseExpiry(_ f: RunStoreFixture) async throws {
        let s = f.store
        let run = try await submit(s, newRun())
        _ = try await s.claimRuns(worker: "w-dead", limit: 1, tenantCap: 100, lease: .milliseconds(50))
        #expect(try await s.renewLeases(worker: "w-dead", runIds: [run.id], lease: .milliseconds(50)).held == [run.id])
        #expect(try await s.renewLeases(worker: "someone", runIds: [run.id], lease: .seconds(5)).held.isEmpty)
        try await Task.sleep(for: .milliseconds(120))
        let expired = try await s.expireLeases(policy: fast, heldByPrefix: nil)
        #expect(expired.map(\.id) == [run.id])
        let back = try #require(try await s.run(id: run.id))
        #expect(back.state == .queued && back.attempts.first?.outcome == .workerLost && back.lease == nil)
        #expect(back.attempts.first?.reason?.contains("w-dead") == true)
        // The old worker comes back: it holds nothing.
        #expect(try await s.finishAttempt(runId: run.id, worker: "w-dead", AttemptEnd(outcome: .succeeded), policy: fast) == nil)
        #expect(try await s.renewLeases(worker: "w-dead", runIds: [run.id], lease: .seconds(5)).held.isEmpty)
        // A restarted node takes back what its earlier incarnation held, lease or not.
        try await Task.sleep(for: .milliseconds(10))
        _ = try await s.claimRuns(worker: "node-1#old", limit: 1, tenantCap: 100, lease: .seconds(600))
        #expect(try await s.expireLeases(policy: fast, heldByPrefix: "node-2#").isEmpty)
        let taken = try await s.expireLeases(policy: fast, heldByPrefix: "node-1#")
        #expect(taken.map(\.id) == [run.id] && taken.first?.attempts.last?.outcome == .workerLost)
        #expect(taken.first?.attempts.last?.reason?.contains("restarted") == true)
    }

    static func handBack(_ f: RunStoreFixture) async throws {
        let s = f.store
        let run = try await submit(s, newRun(maxAttempts: 1))
        #expect(try await s.claimRuns(worker: "w", limit: 1, tenantCap: 100, lease: .seconds(30)).map(\.id) == [run.id])
        #expect(try await s.handBack(runId: run.id, worker: "other", until: Date(), reason: "x") == nil, "only the holder hands back")
        let until = Date().addingTimeInterval(60)
        let back = try #require(try await s.handBack(runId: run.id, worker: "w", until: until, reason: "waiting for the tenant's quota"))
        #expect(back.state == .queued && back.attempts.isEmpty && back.lease == nil && back.reason == "waiting for the tenant's quota")
        #expect(back.notBefore == until && back.startedAt == nil)
        #expect(try await s.run(id: run.id) == back)
        #expect(try await s.claimRuns(worker: "w", limit: 1, tenantCap: 100, lease: .seconds(30)).isEmpty, "not due before `until`")
        #expect(try await s.renewLeases(worker: "w", runIds: [run.id], lease: .seconds(30)).held.isEmpty)

        // Handed back due now: claimed again, and max_attempts 1 still allows its one real attempt.
        let other = try await submit(s, newRun("tnt_b", maxAttempts: 1))
        #expect(try await s.claimRuns(worker: "w", limit: 1, tenantCap: 100, lease: .seconds(30)).map(\.id) == [other.id])
        _ = try #require(try await s.handBack(runId: other.id, worker: "w", until: Date(), reason: "again"))
        let again = try await s.claimRuns(worker: "w", limit: 1, tenantCap: 100, lease: .seconds(30))
        #expect(again.map(\.id) == [other.id] && again.first?.attempts.count == 1)
    }

    static func cancel(_ f: RunStoreFixture) async throws {
        let s = f.store
        let queued = try await submit(s, newRun(createdAt: Date().addingTimeInterval(-10)))
        let c1 = try await s.cancelRun(tenantId: "tnt_a", id: queued.id)
        #expect(c1.state == .cancelled && c1.endedAt != nil)
        let running = try await submit(s, newRun())
        #expect(try await s.claimRuns(worker: "w", limit: 1, tenantCap: 100, lease: .seconds(30)).map(\.id) == [running.id])
        let c2 = try await s.cancelRun(tenantId: "tnt_a", id: running.id)
        #expect(c2.state == .running && c2.cancelRequested)
        #expect(try await s.renewLeases(worker: "w", runIds: [running.id], lease: .seconds(30)).cancelRequested == [running.id])
        let ended = try #require(try await s.finishAttempt(
            runId: running.id, worker: "w", AttemptEnd(outcome: .cancelled, reason: "cancelled by key_x"), policy: fast))
        #expect(ended.state == .cancelled)
        await expectError(.invalidState) { _ = try await s.cancelRun(tenantId: "tnt_a", id: running.id) }
        await expectError(.notFound) { _ = try await s.cancelRun(tenantId: "tnt_b", id: queued.id) }
        await expectError(.notFound) { _ = try await s.cancelRun(tenantId: "tnt_a", id: "run-missing") }
        // An infrastructure failure of a run being cancelled ends it cancelled, not retried.
        let third = try await submit(s, newRun())
        _ = try await s.claimRuns(worker: "w", limit: 1, tenantCap: 100, lease: .seconds(30))
        _ = try await s.cancelRun(tenantId: "tnt_a", id: third.id)
        let r = try #require(try await s.finishAttempt(runId: third.id, worker: "w", AttemptEnd(outcome: .setupFailed, reason: "x"), policy: fast))
        #expect(r.state == .cancelled)
    }

    static func retry(_ f: RunStoreFixture) async throws {
        let s = f.store
        let run = try await submit(s, newRun(maxAttempts: 1))
        await expectError(.invalidState) { _ = try await s.retryRun(tenantId: "tnt_a", id: run.id, maxQueued: 100) }
        _ = try await s.claimRuns(worker: "w", limit: 1, tenantCap: 100, lease: .seconds(30))
        _ = try await s.finishAttempt(runId: run.id, worker: "w", AttemptEnd(outcome: .failed, result: ok(exit: 1)), policy: fast)
        // A full queue refuses a retry as it refuses a submit.
        try await submit(s, newRun())
        await expectError(.quotaExceeded) { _ = try await s.retryRun(tenantId: "tnt_a", id: run.id, maxQueued: 1) }
        let again = try await s.retryRun(tenantId: "tnt_a", id: run.id, maxQueued: 100)
        #expect(again.state == .queued && again.result == nil && again.endedAt == nil && again.maxAttempts == 2)
        let claimed = try await s.claimRuns(worker: "w", limit: 5, tenantCap: 100, lease: .seconds(30)).filter { $0.id == run.id }
        #expect(claimed.first?.attempts.map(\.number) == [1, 2])
        await expectError(.notFound) { _ = try await s.retryRun(tenantId: "tnt_b", id: run.id, maxQueued: 100) }
    }

    static func logs(_ f: RunStoreFixture) async throws {
        let s = f.store
        let run = try await submit(s, newRun())
        try await s.appendRunLog(runId: run.id, attempt: 1, chunks: [
            RunLogChunk(seq: 0, stream: .stdout, data: Array("hello ".utf8)),
            RunLogChunk(seq: 0, stream: .stderr, data: [0xFF, 0x00]),
        ], cap: 10)
        try await s.appendRunLog(runId: run.id, attempt: 1, chunks: [RunLogChunk(seq: 0, stream: .stdout, data: Array("world!".utf8))], cap: 10)
        try await s.appendRunLog(runId: run.id, attempt: 2, chunks: [RunLogChunk(seq: 0, stream: .stdout, data: Array("two".utf8))], cap: 10)
        let all = try await s.runLog(runId: run.id, attempt: 1, afterSeq: 0)
        #expect(all.map(\.seq) == [1, 2, 3])
        #expect(all.map(\.stream) == [.stdout, .stderr, .stdout])
        #expect(all.flatMap(\.data).count == 10, "the cap keeps the head")
        #expect(all[2].data == Array("wo".utf8))
        #expect(try await s.runLog(runId: run.id, attempt: 1, afterSeq: 2).map(\.seq) == [3])
        #expect(try await s.runLog(runId: run.id, attempt: 2, afterSeq: 0).map(\.data) == [Array("two".utf8)])
    }

    static func webhooks(_ f: RunStoreFixture) async throws {
        let s = f.store
        let run = try await submit(s, newRun(webhook: RunWebhook(url: "http://127.0.0.1:1/hook", secret: "s3cret-s3cret-s3cret")))
        #expect(try await s.claimWebhooks(limit: 10, lease: .seconds(30)).isEmpty, "nothing is due before the run ends")
        _ = try await s.claimRuns(worker: "w", limit: 1, tenantCap: 100, lease: .seconds(30))
        let ended = try #require(try await s.finishAttempt(runId: run.id, worker: "w", AttemptEnd(outcome: .succeeded, result: ok()), policy: fast))
        #expect(ended.webhook?.state == .pending)
        let due = try await s.claimWebhooks(limit: 10, lease: .seconds(30))
        #expect(due.map(\.id) == [run.id] && due.first?.webhook?.secret == "s3cret-s3cret-s3cret")
        #expect(try await s.claimWebhooks(limit: 10, lease: .seconds(30)).isEmpty, "a claimed delivery is not handed out twice")
        try await s.recordWebhookDelivery(WebhookDelivery(runId: run.id, number: 1, status: 503), next: Date().addingTimeInterval(-1))
        #expect(try await s.run(id: run.id)?.webhook?.state == .pending)
        #expect(try await s.claimWebhooks(limit: 10, lease: .seconds(30)).map(\.id) == [run.id])
        try await s.recordWebhookDelivery(WebhookDelivery(runId: run.id, number: 2, status: 204), next: nil)
        let done = try #require(try await s.run(id: run.id))
        #expect(done.webhook?.state == .delivered && done.webhook?.deliveries == 2)
        #expect(try await s.webhookDeliveries(runId: run.id).map(\.status) == [503, 204])
        // A webhook that never succeeds ends failed.
        let other = try await submit(s, newRun(webhook: RunWebhook(url: "http://127.0.0.1:1/x", secret: "s3cret-s3cret-s3cret")))
        _ = try await s.cancelRun(tenantId: "tnt_a", id: other.id)
        try await s.recordWebhookDelivery(WebhookDelivery(runId: other.id, number: 1, error: "refused"), next: nil)
        #expect(try await s.run(id: other.id)?.webhook?.state == .failed)
    }

    static func webhookTenantCap(_ f: RunStoreFixture) async throws {
        let s = f.store
        func finished(_ tenant: String) async throws -> RunRecord {
            let run = try await submit(s, newRun(tenant, webhook: RunWebhook(url: "http://127.0.0.1:1/hook", secret: "s3cret-s3cret-s3cret")))
            _ = try await s.cancelRun(tenantId: tenant, id: run.id)
            return run
        }
        var flood: [String] = []
        for _ in 0..<6 { flood.append(try await finished("tnt_a").id) }
        let single = try await finished("tnt_b")
        // tnt_a's six are due first; a cap of 2 takes two of them and reaches tnt_b's one.
        let first = try await s.claimWebhooks(limit: 10, lease: .seconds(30), perTenant: 2, busy: [:])
        #expect(first.filter { $0.tenantId == "tnt_a" }.count == 2, "\(first.map(\.tenantId))")
        #expect(first.contains { $0.id == single.id }, "the other tenant's delivery is not behind the backlog")
        // With tnt_a's two in flight, tnt_a is full: nothing more of it is claimed.
        let second = try await s.claimWebhooks(limit: 10, lease: .seconds(30), perTenant: 2, busy: ["tnt_a": 2])
        #expect(second.isEmpty, "\(second.map(\.id))")
        // One of them ended: one more slot.
        let third = try await s.claimWebhooks(limit: 10, lease: .seconds(30), perTenant: 2, busy: ["tnt_a": 1])
        #expect(third.count == 1 && flood.contains(third[0].id))
    }

    static func stats(_ f: RunStoreFixture) async throws {
        let s = f.store
        let a = try await submit(s, newRun())
        let b = try await submit(s, newRun())
        _ = try await submit(s, newRun())
        let c = try await submit(s, newRun())
        _ = try await s.claimRuns(worker: "w", limit: 2, tenantCap: 100, lease: .seconds(30))
        _ = try await s.finishAttempt(runId: a.id, worker: "w", AttemptEnd(outcome: .succeeded), policy: fast)
        _ = try await s.finishAttempt(runId: b.id, worker: "w", AttemptEnd(outcome: .timedOut), policy: fast)
        _ = try await s.cancelRun(tenantId: "tnt_a", id: c.id)
        _ = try await submit(s, newRun())
        _ = try await s.claimRuns(worker: "w", limit: 1, tenantCap: 100, lease: .seconds(30))
        let st = try await s.runStats(tenantId: "tnt_a", since: Date().addingTimeInterval(-600))
        #expect(st.queued == 1 && st.running == 1, "\(st)")
        #expect(st.minutes.reduce(0) { $0 + $1.succeeded } == 1)
        #expect(st.minutes.reduce(0) { $0 + $1.failed } == 1)
        #expect(st.minutes.reduce(0) { $0 + $1.cancelled } == 1)
        #expect(try await s.runStats(tenantId: "tnt_b", since: Date().addingTimeInterval(-600)) == RunStats())
    }

    static func changes(_ f: RunStoreFixture) async throws {
        let s = f.store
        let stream = s.runChanges()
        let run = try await submit(s, newRun())
        _ = try await s.claimRuns(worker: "w", limit: 1, tenantCap: 100, lease: .seconds(30))
        _ = try await s.cancelRun(tenantId: "tnt_a", id: run.id)
        _ = try await s.finishAttempt(runId: run.id, worker: "w", AttemptEnd(outcome: .cancelled), policy: fast)
        var seen: [RunChange] = []
        for await change in stream where change.runId == run.id {
            seen.append(change)
            if seen.count == 4 { break }
        }
        #expect(seen.map(\.kind) == [.ready, .state, .cancel, .state])
        #expect(seen.map(\.state) == [.queued, .running, .running, .cancelled])
        #expect(seen.allSatisfy { $0.tenantId == "tnt_a" })
        #expect(RunChange(text: seen[0].text) == seen[0])
    }

    static func expectError(_ code: SandboxError.Code, _ body: () async throws -> Void) async {
        do {
            try await body()
            Issue.record("expected \(code.rawValue), got success")
        } catch let e as SandboxError {
            #expect(e.code == code, "\(e)")
        } catch {
            Issue.record("expected \(code.rawValue), got \(error)")
        }
    }
}
