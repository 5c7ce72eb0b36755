import Foundation
import GRDB
import RunStoreContract
import Testing
import SandboxCore
@testable import SandboxStore

@Suite("SQLiteStore: tenants and API keys")
struct KeyTests {
    @Test("keys look like sbx_key_<16 hex>_<64 hex>, carry their id, and differ every time")
    func keyShape() async throws {
        try await withStore { store, _ in
            let (a, ra) = try await store.createAPIKey(tenantName: "acme")
            let (b, rb) = try await store.createAPIKey(tenantName: "acme")
            #expect(a != b && ra.id != rb.id)
            #expect(a.hasPrefix("sbx_\(ra.id)_"))
            let secret = a.dropFirst("sbx_\(ra.id)_".count)
            #expect(secret.count == 64 && secret.allSatisfy(\.isHexDigit))
            #expect(APIKeyText.keyID(of: a) == ra.id && APIKeyText.isKeyID(ra.id))
            #expect(ra.tenantId == rb.tenantId && !ra.revoked)
        }
    }

    @Test("authenticate: the right key passes; wrong secret, unknown id, revoked and malformed keys do not")
    func authenticate() async throws {
        try await withStore { store, _ in
            let (key, record) = try await store.createAPIKey(tenantName: "acme")
            #expect(try await store.authenticate(key: key) == record)

            var wrong = Array(key)
            wrong[wrong.count - 1] = wrong.last == "0" ? "1" : "0"
            #expect(try await store.authenticate(key: String(wrong)) == nil)
            let unknownID = "sbx_key_0000000000000000_" + key.suffix(64)
            #expect(try await store.authenticate(key: unknownID) == nil)
            for bad in ["", "sbx_", key + "0", String(key.dropLast()), key.uppercased(), "Bearer " + key,
                        key.replacingOccurrences(of: "sbx_", with: "sbz_"), " " + key, record.id] {
                #expect(try await store.authenticate(key: bad) == nil, "\(bad)")
            }

            try await store.revokeAPIKey(id: record.id)
            #expect(try await store.authenticate(key: key) == nil)
            try await store.revokeAPIKey(id: record.id)  // again: still fine
            let (other, otherRecord) = try await store.createAPIKey(tenantName: "acme")
            #expect(try await store.authenticate(key: other) == otherRecord, "revoking one key leaves the others")
        }
    }

    @Test("a key revoked by another process on the same data directory (sandboxer key revoke, another node) is refused here within KnownKeys.trust; one revoked through this store at once, even while a check of it is remembered")
    func revokedElsewhere() async throws {
        try await withStore { server, temp in
            let cli = try temp.open()
            defer { try? cli.close() }
            let (key, record) = try await server.createAPIKey(tenantName: "acme")
            #expect(try await server.authenticate(key: key) == record)
            #expect(try await server.authenticate(key: key) == record, "trusted from memory for a moment")
            try await cli.revokeAPIKey(id: record.id)
            #expect(try await cli.authenticate(key: key) == nil, "the revoking process refuses it at once")
            try await Task.sleep(for: KnownKeys.trust + .milliseconds(200))
            #expect(try await server.authenticate(key: key) == nil, "the other process refuses it once its trust has run out")

            let (second, secondRecord) = try await server.createAPIKey(tenantName: "acme")
            #expect(try await server.authenticate(key: second) == secondRecord)
            try await server.revokeAPIKey(id: secondRecord.id)
            #expect(try await server.authenticate(key: second) == nil, "revoked through this store: not trusted from memory")
        }
    }

    @Test("revoke takes the whole key too; an unknown id is not_found naming the list command")
    func revoke() async throws {
        try await withStore { store, _ in
            let (key, _) = try await store.createAPIKey(tenantName: "acme")
            try await store.revokeAPIKey(id: key)
            #expect(try await store.authenticate(key: key) == nil)
            await #expect { try await store.revokeAPIKey(id: "key_ffffffffffffffff") } throws: { e in
                let e = e as! SandboxError
                return e.code == .notFound && e.message.contains("sandboxer key list")
            }
        }
    }

    @Test("the plaintext key (nor its secret) never reaches the database file or its WAL, before or after a checkpoint")
    func keyNeverStored() async throws {
        let temp = TempData()
        defer { temp.cleanup() }
        let store = try temp.open()
        var keys: [String] = []
        for i in 0..<5 { keys.append(try await store.createAPIKey(tenantName: "tenant-\(i % 2)").key) }
        func check(_ when: String) {
            let bytes = temp.diskBytes()
            #expect(bytes.count > 0)
            for key in keys {
                #expect(!bytes.contains(bytes: Array(key.utf8)), "whole key on disk \(when)")
                #expect(!bytes.contains(bytes: Array(key.suffix(64).utf8)), "secret on disk \(when)")
                #expect(!bytes.contains(bytes: Array(key.suffix(32).utf8)), "half a secret on disk \(when)")
            }
            // The test can fail: the key ids are on disk, so the search does find what is stored.
            #expect(bytes.contains(bytes: Array(APIKeyText.keyID(of: keys[0])!.utf8)), "key ids are stored \(when)")
        }
        check("with the WAL")
        try store.close()
        check("after close")
    }

    @Test("listing keys shows ids, tenants and revoked flags (never secrets), filtered by tenant")
    func list() async throws {
        try await withStore { store, _ in
            let (_, a1) = try await store.createAPIKey(tenantName: "acme")
            let (_, a2) = try await store.createAPIKey(tenantName: "acme")
            let (_, b1) = try await store.createAPIKey(tenantName: "beta")
            try await store.revokeAPIKey(id: a2.id)
            let all = try await store.apiKeys()
            #expect(Set(all.map(\.record.id)) == [a1.id, a2.id, b1.id])
            #expect(all.first { $0.record.id == a2.id }?.record.revoked == true)
            let acme = try await store.apiKeys(tenantName: "acme")
            #expect(acme.map(\.record.id) == [a1.id, a2.id] && acme.allSatisfy { $0.tenant == "acme" })
            #expect(try await store.apiKeys(tenantName: "nobody").isEmpty)
        }
    }

    @Test("ensureTenant is idempotent, also when 20 tasks race on one name")
    func ensureTenant() async throws {
        try await withStore { store, _ in
            let first = try await store.ensureTenant(name: "acme")
            #expect(try await store.ensureTenant(name: "acme") == first)
            #expect(try await store.tenant(id: first.id) == first)
            #expect(try await store.tenant(id: "tnt_missing") == nil)
            #expect(first.overrides == QuotaOverrides())
            let ids = try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<20 { group.addTask { try await store.ensureTenant(name: "race").id } }
                return try await group.reduce(into: Set<String>()) { $0.insert($1) }
            }
            #expect(ids.count == 1)
            let (_, key) = try await store.createAPIKey(tenantName: "race")
            #expect(ids.contains(key.tenantId), "createAPIKey reuses the tenant")
            #expect(try await store.ensureTenant(name: "other").id != first.id)
        }
    }

    @Test("quotas: a tenant has none of its own until the operator sets them; set, keep and clear one by one")
    func quotaOverrides() async throws {
        try await withStore { store, _ in try await TenantStoreContract.quotaOverrides(store: store) }
    }

    @Test("migration v10: a tenant that stored the old defaults in full has no quota of its own afterwards")
    func legacyQuotaBecomesDefault() async throws {
        let temp = TempData()
        defer { temp.cleanup() }
        let path = temp.dir + "/sandboxer.db"
        do {
            let store = try temp.open()
            _ = try await store.ensureTenant(name: "old")
            _ = try await store.changeQuota(tenantName: "old", { var c = QuotaChanges(); c.maxSandboxes = .set(7); return c }())
            try store.close()
        }
        // As a store before v10 left them: one tenant with the old defaults written out, one with its own.
        let queue = try DatabaseQueue(path: path)
        try await queue.write { db in
            try db.execute(sql: "INSERT INTO tenants (id, name, created_at, quota) VALUES ('tnt_legacy', 'legacy', 0, ?)",
                           arguments: [TenantRules.legacyDefaultQuota])
            try db.execute(sql: "UPDATE tenants SET quota = ? WHERE name = 'old'",
                           arguments: [#"{"execs_per_minute":6000,"max_memory_bytes":68719476736,"max_sandboxes":7}"#])
            try db.execute(sql: "DELETE FROM grdb_migrations WHERE identifier = 'v10-quota-overrides'")
        }
        try queue.close()
        let store = try temp.open()
        defer { try? store.close() }
        #expect(try await store.tenant(name: "legacy")?.overrides == QuotaOverrides())
        #expect(try await store.tenant(name: "old")?.overrides == QuotaOverrides(maxSandboxes: 7, execsPerMinute: 6000, maxMemoryBytes: 64 << 30),
                "a tenant whose quota differs from the old defaults keeps it as its own")
    }

    @Test("tenant names must be short, without spaces or control characters")
    func badTenantNames() async throws {
        try await withStore { store, _ in
            for bad in ["", "a b", "tab\there", String(repeating: "x", count: 129), "nl\n"] {
                await #expect(throws: SandboxError.self, "\(bad)") { try await store.ensureTenant(name: bad) }
                await #expect(throws: SandboxError.self, "\(bad)") { try await store.createAPIKey(tenantName: bad) }
            }
        }
    }

    @Test("E2B-shaped keys: e2b_<40 hex>, an ordinary key of the tenant, stored hashed like any key")
    func e2bKeys() async throws {
        try await withStore { store, _ in try await E2BStoreContract.e2bKeys(store: store) }
    }

    @Test("a sandbox's envd access (token hashes, secure) round-trips with its record; the token itself is never stored")
    func envdAccess() async throws {
        try await withStore { store, _ in try await E2BStoreContract.envdAccess(store: store) }
    }
}
