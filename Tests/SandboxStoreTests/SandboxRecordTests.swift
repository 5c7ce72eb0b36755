import Foundation
import RunStoreContract
import Testing
import SandboxCore
@testable import SandboxStore

@Suite("SQLiteStore: sandbox records, paging and filters")
struct SandboxRecordTests {
    @Test("insert, get and update keep every field exactly (profile, dates, metadata)")
    func insertUpdateGet() async throws {
        try await withStore { store, _ in
            var box = sampleSandbox(id: "sbx-1", metadata: ["team": "ml", "odd key/\"x\"": "välue"])
            try await store.insertSandbox(box)
            #expect(try await store.sandbox(id: "sbx-1") == box)
            #expect(try await store.sandbox(id: "sbx-none") == nil)

            box.state = .stopping
            box.updatedAt = Date()
            box.expiresAt = nil
            box.idleTimeoutSeconds = nil
            box.metadata = [:]
            box.reason = "deleted by key_x"
            box.execCount = 9
            box.cpuMs = 1.5
            box.profile = .default
            try await store.updateSandbox(box)
            #expect(try await store.sandbox(id: "sbx-1") == box)

            await #expect { try await store.insertSandbox(box) } throws: { ($0 as! SandboxError).code == .invalidState }
            await #expect { try await store.updateSandbox(sampleSandbox(id: "sbx-missing")) } throws: {
                ($0 as! SandboxError).code == .notFound
            }
        }
    }

    @Test("paging through 250 records (ties in created_at included) gives each exactly once, in order")
    func paging() async throws {
        try await withStore { store, _ in
            let base = Date()
            var expected: [SandboxRecord] = []
            for i in 0..<250 {
                // Groups of three share a creation time, so the id breaks ties; ids are not in time order.
                let r = sampleSandbox(id: String(format: "sbx-%03d", (i * 37) % 250), createdAt: base.addingTimeInterval(Double(i / 3)))
                expected.append(r)
            }
            for r in expected.shuffled() { try await store.insertSandbox(r) }
            try await store.insertSandbox(sampleSandbox(id: "sbx-other-tenant", tenant: "tnt_b"))
            expected.sort { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }

            var seen: [SandboxRecord] = []
            var cursor: String?
            var pages = 0
            repeat {
                let page = try await store.sandboxes(SandboxQuery(tenantId: "tnt_a", cursor: cursor, limit: 40))
                #expect(page.items.count <= 40)
                seen += page.items
                cursor = page.nextCursor
                pages += 1
            } while cursor != nil && pages < 20
            #expect(pages == 7)
            #expect(seen.count == 250)
            #expect(Set(seen.map(\.id)).count == 250)
            #expect(seen == expected)

            let exact = try await store.sandboxes(SandboxQuery(tenantId: "tnt_a", limit: 250))
            #expect(exact.items.count == 250 && exact.nextCursor == nil, "a full last page has no next cursor")
        }
    }

    @Test("state and metadata filters: every metadata pair must match; nil or no states means any state")
    func filters() async throws {
        try await withStore { store, _ in
            let t = Date()
            try await store.insertSandbox(sampleSandbox(id: "a", state: .running, createdAt: t, metadata: ["team": "ml", "env": "prod"]))
            try await store.insertSandbox(sampleSandbox(id: "b", state: .running, createdAt: t + 1, metadata: ["team": "ml", "env": "dev"]))
            try await store.insertSandbox(sampleSandbox(id: "c", state: .destroyed, createdAt: t + 2, metadata: ["team": "ml", "env": "prod"]))
            try await store.insertSandbox(sampleSandbox(id: "d", state: .creating, createdAt: t + 3, metadata: ["team": "web"]))
            try await store.insertSandbox(sampleSandbox(id: "e", state: .lost, createdAt: t + 4))

            func ids(_ states: [SandboxState]? = nil, _ metadata: [String: String] = [:]) async throws -> [String] {
                try await store.sandboxes(SandboxQuery(tenantId: "tnt_a", states: states, metadata: metadata)).items.map(\.id)
            }
            #expect(try await ids() == ["a", "b", "c", "d", "e"])
            #expect(try await ids([]) == ["a", "b", "c", "d", "e"])
            #expect(try await ids([.running]) == ["a", "b"])
            #expect(try await ids([.destroyed, .lost]) == ["c", "e"])
            #expect(try await ids(nil, ["team": "ml"]) == ["a", "b", "c"])
            #expect(try await ids(nil, ["team": "ml", "env": "prod"]) == ["a", "c"])
            #expect(try await ids([.running], ["team": "ml", "env": "prod"]) == ["a"])
            #expect(try await ids(nil, ["team": "ml", "env": "staging"]) == [])
            #expect(try await ids(nil, ["env": "ml"]) == [], "a value under another key does not match")

            let page1 = try await store.sandboxes(SandboxQuery(tenantId: "tnt_a", metadata: ["team": "ml"], limit: 2))
            #expect(page1.items.map(\.id) == ["a", "b"])
            let page2 = try await store.sandboxes(SandboxQuery(tenantId: "tnt_a", metadata: ["team": "ml"], cursor: page1.nextCursor, limit: 2))
            #expect(page2.items.map(\.id) == ["c"] && page2.nextCursor == nil)
        }
    }

    @Test("tenants are separate: a listing shows only the tenant's own sandboxes")
    func tenantSeparation() async throws {
        try await withStore { store, _ in
            try await store.insertSandbox(sampleSandbox(id: "a1", tenant: "tnt_a", metadata: ["k": "v"]))
            try await store.insertSandbox(sampleSandbox(id: "b1", tenant: "tnt_b", metadata: ["k": "v"]))
            try await store.insertSandbox(sampleSandbox(id: "b2", tenant: "tnt_b"))
            #expect(try await store.sandboxes(SandboxQuery(tenantId: "tnt_a")).items.map(\.id) == ["a1"])
            #expect(try await store.sandboxes(SandboxQuery(tenantId: "tnt_b", metadata: ["k": "v"])).items.map(\.id) == ["b1"])
            #expect(try await store.sandboxes(SandboxQuery(tenantId: "tnt_c")).items.isEmpty)
            // A cursor from tenant b's listing does not open tenant a's rows.
            let bPage = try await store.sandboxes(SandboxQuery(tenantId: "tnt_b", limit: 1))
            let crossed = try await store.sandboxes(SandboxQuery(tenantId: "tnt_a", cursor: bPage.nextCursor))
            #expect(crossed.items.allSatisfy { $0.tenantId == "tnt_a" })
        }
    }

    @Test("a cursor the store did not give out is invalid_request")
    func badCursor() async throws {
        try await withStore { store, _ in
            for bad in ["", "nonsense", "djE6eHl6Ong", "%%%"] {
                await #expect("\(bad)") { try await store.sandboxes(SandboxQuery(tenantId: "t", cursor: bad)) } throws: { e in
                    (e as! SandboxError).code == .invalidRequest
                }
            }
            let c = PageCursor(createdAt: 12.5, id: "sbx:with:colons")
            let decoded = try PageCursor(text: c.text)
            #expect(decoded == c)
        }
    }

    @Test("activeSandboxes returns every non-final sandbox of every tenant")
    func active() async throws {
        try await withStore { store, _ in
            let t = Date()
            for (i, state) in SandboxState.allCases.enumerated() {
                try await store.insertSandbox(sampleSandbox(id: "a-\(state)", tenant: "tnt_a", state: state, createdAt: t + Double(i)))
                try await store.insertSandbox(sampleSandbox(id: "b-\(state)", tenant: "tnt_b", state: state, createdAt: t + Double(i) + 0.5))
            }
            let active = try await store.activeSandboxes()
            #expect(Set(active.map(\.id)) == ["a-creating", "b-creating", "a-running", "b-running", "a-paused", "b-paused",
                                           "a-hibernated", "b-hibernated", "a-stopping", "b-stopping"])
            #expect(active.allSatisfy { !$0.state.isFinal })
        }
    }
}
