import Foundation
import SandboxCore
import SandboxStore
import Testing

/// The tenant audit trail contract (``SandboxStore/appendTenantEvents(_:batch:)``,
/// ``SandboxStore/tenantEvents(tenantId:after:limit:)``) every engine must pass; each engine's
/// suite runs every case on a fresh store.
public enum TenantTrailContract {
    public typealias Case = @Sendable (EventStoreFixture) async throws -> Void

    public static let cases: [String: Case] = [
        "entries come back in append order, numbered 1, 2, … per tenant, and only to their tenant": numbering,
        "after and limit page through a tenant's trail": paging,
        "a batch appended again under its key is stored once": replay,
        "concurrent appenders on two instances get one gapless order per tenant": concurrent,
    ]

    public static var names: [String] { cases.keys.sorted() }

    static func event(_ tenant: String, _ kind: AuditKind, _ n: Int64 = 0, sandbox: String? = nil) -> TenantEvent {
        TenantEvent(tenantId: tenant, sandboxId: sandbox, kind: kind, actor: "key_test", correlation: "c-\(n)", detail: ["n": .int(n)])
    }

    static func tenant() -> String { "tnt_" + UUID().uuidString.prefix(8).lowercased() }

    static func numbering(_ f: EventStoreFixture) async throws {
        let a = tenant(), b = tenant()
        try await f.store.appendTenantEvents([event(a, .keyCreate), event(b, .secretSet), event(a, .sandboxCreate, 1, sandbox: "sbx-1")],
                                             batch: UUID().uuidString)
        var stale = event(a, .keyRevoke, 2)
        stale.seq = 99  // the store numbers
        try await f.store.appendTenantEvents([stale], batch: UUID().uuidString)
        try await f.store.appendTenantEvents([], batch: UUID().uuidString)

        let trailA = try await f.store.tenantEvents(tenantId: a, after: 0, limit: 100)
        #expect(trailA.map(\.seq) == [1, 2, 3])
        #expect(trailA.map(\.kind) == [.keyCreate, .sandboxCreate, .keyRevoke])
        #expect(trailA.map(\.sandboxId) == [nil, "sbx-1", nil])
        #expect(trailA.allSatisfy { $0.tenantId == a })
        #expect(trailA[1].correlation == "c-1" && trailA[1].detail == ["n": .int(1)] && trailA[1].actor == "key_test")
        let trailB = try await f.store.tenantEvents(tenantId: b, after: 0, limit: 100)
        #expect(trailB.map(\.kind) == [.secretSet] && trailB.map(\.seq) == [1])
        #expect(try await f.store.tenantEvents(tenantId: tenant(), after: 0, limit: 100).isEmpty)
    }

    static func paging(_ f: EventStoreFixture) async throws {
        let t = tenant()
        try await f.store.appendTenantEvents((1...25).map { event(t, .runSubmit, $0) }, batch: UUID().uuidString)
        #expect(try await f.store.tenantEvents(tenantId: t, after: 0, limit: 10).map(\.seq) == Array(1...10))
        #expect(try await f.store.tenantEvents(tenantId: t, after: 10, limit: 10).map(\.seq) == Array(11...20))
        let rest = try await f.store.tenantEvents(tenantId: t, after: 20, limit: 10)
        #expect(rest.map(\.seq) == Array(21...25))
        #expect(rest.map { $0.detail["n"] } == (21...25).map { EventValue.int($0) })
        #expect(try await f.store.tenantEvents(tenantId: t, after: 25, limit: 10).isEmpty)
    }

    static func replay(_ f: EventStoreFixture) async throws {
        let t = tenant()
        let key = UUID().uuidString
        let batch = [event(t, .secretSet, 1), event(t, .secretRemove, 2)]
        try await f.store.appendTenantEvents(batch, batch: key)
        try await f.store.appendTenantEvents(batch, batch: key)
        let other = try await f.second()
        try await other.appendTenantEvents(batch, batch: key)
        #expect(try await f.store.tenantEvents(tenantId: t, after: 0, limit: 100).map(\.kind) == [.secretSet, .secretRemove])
    }

    static func concurrent(_ f: EventStoreFixture) async throws {
        let t = tenant()
        let other = try await f.second()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (i, store) in [f.store, other].enumerated() {
                group.addTask {
                    for n in 0..<20 {
                        try await store.appendTenantEvents([event(t, .sandboxCreate, Int64(i * 100 + n))], batch: UUID().uuidString)
                    }
                }
            }
            try await group.waitForAll()
        }
        let trail = try await f.store.tenantEvents(tenantId: t, after: 0, limit: 100)
        #expect(trail.map(\.seq) == (1...40).map(Int64.init))
        for i in 0..<2 {
            let mine = trail.compactMap { e -> Int64? in
                guard case .int(let n) = e.detail["n"], n / 100 == Int64(i) else { return nil }
                return n
            }
            #expect(mine == (0..<20).map { Int64(i * 100 + $0) })
        }
    }
}
