import Foundation
import SandboxCore
import SandboxStore
import Testing

/// The metering contract's fixture: a store that holds sandboxes' samples and the run queue.
public typealias UsageStoreFixture = StoreFixture<any SandboxStore & RunStore>

/// The metering contract (``SandboxStore/appendUsage(_:)``, ``SandboxStore/usage(_:)``) every
/// engine must pass; each engine's suite runs every case on a fresh store.
public enum UsageContract {
    public typealias Case = @Sendable (UsageStoreFixture) async throws -> Void

    public static let cases: [String: Case] = [
        "samples add up per UTC day and per sandbox, inside the window only, per tenant only": sums,
        "a sample stored again (a replay, another node) counts once": replay,
        "finished runs count per final state with their CPU and wall time, by day and by run": runs,
    ]

    public static var names: [String] { cases.keys.sorted() }

    /// 2026-12-05T23:00:00Z and two hours later (the next UTC day).
    static let late = Date(timeIntervalSince1970: 1_796_511_600)
    static let day1 = "2026-12-05", day2 = "2026-12-06"

    static func sample(_ tenant: String, _ sandbox: String, at: Date, cpu: Double = 1, execs: Int64 = 1) -> UsageSample {
        UsageSample(tenantId: tenant, sandboxId: sandbox, at: at, sandboxSeconds: 10, cpuSeconds: cpu, memoryGiBSeconds: 0.5,
                    egressBytesIn: 100, egressBytesOut: 7, execs: execs)
    }

    static func tenant() -> String { "tnt_" + UUID().uuidString.prefix(8).lowercased() }

    static func sums(_ f: UsageStoreFixture) async throws {
        let (a, b) = (tenant(), tenant())
        try await f.store.appendUsage([
            sample(a, "sbx-1", at: late), sample(a, "sbx-1", at: late + 60, cpu: 2), sample(a, "sbx-2", at: late + 7200, cpu: 4, execs: 3),
            sample(b, "sbx-9", at: late, cpu: 100),
            sample(a, "sbx-3", at: late - 86_400 * 3),  // before the window
        ])
        let window = (since: late - 3600, until: late + 86_400)
        let byDay = try await f.store.usage(UsageQuery(tenantId: a, since: window.since, until: window.until, groupBy: .day))
        #expect(byDay.map(\.key) == [day1, day2])
        #expect(byDay[0].totals.cpuSeconds == 3 && byDay[0].totals.execs == 2 && byDay[0].totals.sandboxSeconds == 20)
        #expect(byDay[0].totals.egressBytesIn == 200 && byDay[0].totals.egressBytesOut == 14 && byDay[0].totals.memoryGiBSeconds == 1)
        #expect(byDay[1].totals.cpuSeconds == 4 && byDay[1].totals.execs == 3 && byDay[1].totals.runs.isEmpty)
        let bySandbox = try await f.store.usage(UsageQuery(tenantId: a, since: window.since, until: window.until, groupBy: .sandbox))
        #expect(bySandbox.map(\.key) == ["sbx-1", "sbx-2"] && bySandbox.map(\.totals.cpuSeconds) == [3, 4])
        // until is exclusive: the sample at late + 7200 is out.
        let early = try await f.store.usage(UsageQuery(tenantId: a, since: window.since, until: late + 7200, groupBy: .sandbox))
        #expect(early.map(\.key) == ["sbx-1"])
        #expect(try await f.store.usage(UsageQuery(tenantId: a, since: window.since, until: window.until, groupBy: .run)).isEmpty)
        let other = try await f.store.usage(UsageQuery(tenantId: b, since: window.since, until: window.until, groupBy: .sandbox))
        #expect(other.map(\.key) == ["sbx-9"] && other.first?.totals.cpuSeconds == 100)
    }

    static func replay(_ f: UsageStoreFixture) async throws {
        let t = tenant()
        let s = sample(t, "sbx-1", at: late)
        try await f.store.appendUsage([s])
        try await f.store.appendUsage([s, sample(t, "sbx-1", at: late + 1)])
        try await f.second().appendUsage([s])
        let got = try await f.store.usage(UsageQuery(tenantId: t, since: late - 10, until: late + 10, groupBy: .sandbox))
        #expect(got.first?.totals.cpuSeconds == 2 && got.first?.totals.execs == 2)
    }

    static func runs(_ f: UsageStoreFixture) async throws {
        let t = tenant()
        var ids: [String] = []
        for _ in 0..<3 { ids.append(try await f.store.submitRun(RunStoreContract.newRun(t), maxQueued: 100).run.id) }
        _ = try await f.store.claimRuns(worker: "w", limit: 3, tenantCap: 100, lease: .seconds(30))
        var result = RunStoreContract.ok()
        result.usage = Usage(wallMs: 2000, cpuMs: 1500, peakMemoryBytes: 1 << 30)
        _ = try await f.store.finishAttempt(runId: ids[0], worker: "w", AttemptEnd(outcome: .succeeded, result: result), policy: RunStoreContract.fast)
        _ = try await f.store.finishAttempt(runId: ids[1], worker: "w", AttemptEnd(outcome: .succeeded, result: result), policy: RunStoreContract.fast)
        _ = try await f.store.finishAttempt(
            runId: ids[2], worker: "w", AttemptEnd(outcome: .failed, reason: "exit 3", result: RunStoreContract.ok(exit: 3)), policy: RunStoreContract.fast)
        let now = Date()
        let byDay = try await f.store.usage(UsageQuery(tenantId: t, since: now - 3600, until: now + 60, groupBy: .day))
        #expect(byDay.count == 1)
        #expect(byDay.first?.totals.runs == ["succeeded": 2, "failed": 1])
        #expect(byDay.first?.totals.cpuSeconds == 3 && byDay.first?.totals.sandboxSeconds == 4 && byDay.first?.totals.memoryGiBSeconds == 4)
        let byRun = try await f.store.usage(UsageQuery(tenantId: t, since: now - 3600, until: now + 60, groupBy: .run))
        #expect(byRun.map(\.key) == ids.sorted())
        #expect(byRun.first { $0.key == ids[2] }?.totals.runs == ["failed": 1])
        #expect(try await f.store.usage(UsageQuery(tenantId: t, since: now - 3600, until: now + 60, groupBy: .sandbox)).isEmpty)
        #expect(try await f.store.usage(UsageQuery(tenantId: tenant(), since: now - 3600, until: now + 60, groupBy: .day)).isEmpty)
    }
}
