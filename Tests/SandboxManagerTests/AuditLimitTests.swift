import Foundation
import SandboxCore
@testable import SandboxManager
import SandboxStore
import SandboxTestSupport
import Testing

/// Sandbox code cannot write unlimited audit entries: what it causes is coalesced and
/// rate-limited, and every trail is capped with a recorded `audit.truncated`.
@Suite(.serialized) struct AuditLimitTests {
    static let id = "sbx-000000000007"

    /// What the sandbox's resolver records for one denied query.
    static func dnsDenial(_ name: String, sandboxId: String = id) -> AuditEvent {
        AuditEvent(sandboxId: sandboxId, kind: .egressDeny, actor: "sandbox", detail: [
            "host": .string(name), "port": 53, "via": "dns", "reason": .string("\(name) denied: no rule allows this name"), "profile": "p",
        ])
    }

    @Test func aFloodOfDNSDenialsBecomesAFewEntriesThatCountTheRest() {
        var limiter = AuditLimiter()
        let start = ContinuousClock.now
        var written: [AuditEvent] = []
        // 12 s of queries as measured in the attack: 258,392, half one name again and again, half unique names.
        let total = 258_392
        for i in 0..<total {
            let now = start + .milliseconds(i * 12_000 / total)
            let name = i % 2 == 0 ? "same.attacker.example" : "x\(i).attacker.example"
            written += limiter.admit(Self.dnsDenial(name), now: now)
        }
        written += limiter.finish(AuditEvent(sandboxId: Self.id, kind: .sandboxKill, actor: "server"))
        let s = limiter.settings
        let bound = s.burst + Int(12 * s.perSecond) + 11
        #expect(written.count <= bound, "\(written.count) entries for \(total) denials")
        let repeated = written.filter { $0.detail["host"] == "same.attacker.example" }
        #expect(repeated.count >= 2, "the first denial, then one entry per window that counts the rest")
        let counted = repeated.compactMap { e -> Int64? in if case .int(let n) = e.detail["count"] { return n } else { return nil } }
        let summaries = written.filter { $0.kind == .auditRateLimited }
        let dropped = summaries.compactMap { e -> Int64? in if case .int(let n) = e.detail["dropped"] { return n } else { return nil } }
        // Every denial is either an entry of its own, counted in a coalesced entry, or counted as dropped.
        let ownEntries = written.filter { $0.kind == .egressDeny && $0.detail["count"] == nil }.count
        #expect(Int64(ownEntries) + counted.reduce(0, +) + dropped.reduce(0, +) == Int64(total))
        #expect(!summaries.isEmpty)
        #expect(written.last?.kind == .sandboxKill)
    }

    @Test func aTrailIsCappedWithAnAuditTruncatedEntryAndStillRecordsItsEnd() {
        var settings = AuditLimiter.Settings()
        settings.maxEntries = 50
        var limiter = AuditLimiter(settings: settings)
        var written: [AuditEvent] = []
        for i in 0..<500 {
            written += limiter.admit(AuditEvent(sandboxId: Self.id, kind: .fileRead, actor: "key_a", detail: ["path": .string("/workspace/\(i)")]))
        }
        written += limiter.admit(AuditEvent(sandboxId: Self.id, kind: .sandboxDelete, actor: "key_a"))
        #expect(written.count == 51)
        #expect(written[48].kind == .fileRead && written[49].kind == .auditTruncated && written[50].kind == .sandboxDelete)
        #expect(written[49].detail["limit"] == 50)
    }

    @Test func anotherSandboxIsNotLimitedByTheFlood() {
        var limiter = AuditLimiter()
        for i in 0..<10_000 { _ = limiter.admit(Self.dnsDenial("x\(i).attacker.example")) }
        let other = limiter.admit(Self.dnsDenial("pypi.org", sandboxId: "sbx-000000000008"))
        #expect(other.count == 1)
    }

    /// The manager's own sink over a real store: a flood leaves a bounded trail, read in full.
    @Test(.realSandboxes) func theManagersTrailStaysBoundedUnderAFlood() async throws {
        try await ManagerFixture.with { f in
            try await f.manager.start()
            let sbx = try await f.manager.create(tenantId: f.tenant.id, ManagerFixture.request, actor: "key_a")
            for i in 0..<100_000 { f.manager.eventSink.record(Self.dnsDenial("d\(i % 5_000).attacker.example", sandboxId: sbx.id)) }
            _ = try await f.manager.destroy(tenantId: f.tenant.id, id: sbx.id, actor: "key_a")
            let trail = try await f.manager.auditTrail(tenantId: f.tenant.id, id: sbx.id, limit: 10_000)
            #expect(trail.count < 1_000, "\(trail.count) entries")
            #expect(trail.first?.kind == .sandboxCreate && trail.last?.kind == .sandboxDelete)
            #expect(trail.contains { $0.kind == .auditRateLimited })
        }
    }
}
