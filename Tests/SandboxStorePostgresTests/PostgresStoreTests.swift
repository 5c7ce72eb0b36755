import Foundation
import RunStoreContract
import SandboxCore
import SandboxStore
import SandboxTestSupport
import Testing
@testable import SandboxStorePostgres

/// The SandboxStore side of the PostgreSQL engine: the same semantics and errors as SQLite.
@Suite("PostgresStore: tenants, keys, sandboxes, execs, logs, audit", .postgres)
struct PostgresStoreTests {
    @Test("keys: created per tenant, authenticated by the whole key only, revoked by id; only a SHA-256 is stored")
    func keys() async throws {
        try await withPostgres { store, db in
            let (key, record) = try await store.createAPIKey(tenantName: "acme")
            let (other, otherRecord) = try await store.createAPIKey(tenantName: "acme")
            #expect(record.tenantId == otherRecord.tenantId && key != other)
            #expect(try await store.authenticate(key: key) == record)
            #expect(try await store.authenticate(key: String(key.dropLast()) + (key.last == "0" ? "1" : "0")) == nil)
            #expect(try await store.authenticate(key: "nonsense") == nil)
            #expect(try await store.apiKeys(tenantName: "acme").map(\.record.id) == [record.id, otherRecord.id])
            #expect(try await store.apiKeys(tenantName: nil).allSatisfy { $0.tenant == "acme" })

            // A second node sees the key at once, and the revocation within KnownKeys.trust (the
            // revoking node at once).
            let node2 = try await db.open()
            #expect(try await node2.authenticate(key: key) == record)
            try await store.revokeAPIKey(id: key)
            #expect(try await store.authenticate(key: key) == nil)
            try await Task.sleep(for: KnownKeys.trust + .milliseconds(200))
            #expect(try await node2.authenticate(key: key) == nil)
            #expect(try await node2.authenticate(key: other) == otherRecord)
            await #expect { try await node2.revokeAPIKey(id: "key_ffffffffffffffff") } throws: { e in
                (e as? SandboxError)?.code == .notFound && (e as? SandboxError)?.message.contains("sandboxer key list") == true
            }
            await node2.close()

            let stored = try await store.fetch("reading hashes", "SELECT encode(hash, 'hex') AS h FROM api_keys") { try $0.get("h", as: String.self) }
            #expect(stored.count == 2 && stored.allSatisfy { $0.count == 64 })
            let secret = String(key.suffix(64))
            let text = try await store.fetch("dumping keys", "SELECT row_to_json(k)::text AS j FROM api_keys k") { try $0.get("j", as: String.self) }
            #expect(!text.joined().contains(secret), "the secret never reaches the database")
        }
    }

    @Test("tenants: ensureTenant is idempotent, quotas are replaced, bad names are refused")
    func tenants() async throws {
        try await withPostgres { store, _ in
            let a = try await store.ensureTenant(name: "acme")
            #expect(try await store.ensureTenant(name: "acme") == a)
            #expect(try await store.tenant(id: a.id) == a)
            #expect(try await store.tenant(id: "tnt_none") == nil)
            let quota = QuotaOverrides(maxSandboxes: 3, execsPerMinute: 10, maxMemoryBytes: 1 << 30)
            try await store.setQuota(tenantId: a.id, quota)
            #expect(try await store.tenant(id: a.id)?.overrides == quota)
            await #expect { try await store.setQuota(tenantId: "tnt_none", quota) } throws: { ($0 as? SandboxError)?.code == .notFound }
            await #expect { try await store.ensureTenant(name: "with space") } throws: { ($0 as? SandboxError)?.code == .invalidRequest }
        }
    }

    @Test("quotas: a tenant has none of its own until the operator sets them; set, keep and clear one by one")
    func quotaOverrides() async throws {
        try await withPostgres { store, _ in try await TenantStoreContract.quotaOverrides(store: store) }
    }

    @Test("E2B-shaped keys: e2b_<40 hex>, an ordinary key of the tenant, stored hashed like any key")
    func e2bKeys() async throws {
        try await withPostgres { store, _ in try await E2BStoreContract.e2bKeys(store: store) }
    }

    @Test("a sandbox's envd access (token hashes, secure) round-trips with its record; the token itself is never stored")
    func envdAccess() async throws {
        try await withPostgres { store, _ in try await E2BStoreContract.envdAccess(store: store) }
    }

    @Test("sandboxes: exact round trip, duplicate and missing ids, filters, and paging 130 records with tied times")
    func sandboxes() async throws {
        try await withPostgres { store, _ in
            var box = sampleSandbox(id: "sbx-1", metadata: ["team": "ml", "odd key/\"x\"": "välue"])
            try await store.insertSandbox(box)
            #expect(try await store.sandbox(id: "sbx-1") == box)
            try box.move(to: .stopping)
            try box.move(to: .destroyed, reason: "deleted")
            box.expiresAt = nil
            try await store.updateSandbox(box)
            #expect(try await store.sandbox(id: "sbx-1") == box)
            await #expect { try await store.insertSandbox(box) } throws: { ($0 as? SandboxError)?.code == .invalidState }
            await #expect { try await store.updateSandbox(sampleSandbox(id: "nope")) } throws: { ($0 as? SandboxError)?.code == .notFound }

            let base = Date()
            var expected: [SandboxRecord] = []
            for i in 0..<130 {
                expected.append(sampleSandbox(id: String(format: "p-%03d", (i * 37) % 130), tenant: "tnt_p",
                                              createdAt: base.addingTimeInterval(Double(i / 3)), metadata: ["even": i % 2 == 0 ? "y" : "n"]))
            }
            for r in expected.shuffled() { try await store.insertSandbox(r) }
            expected.sort { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }
            var seen: [SandboxRecord] = []
            var cursor: String?
            repeat {
                let page = try await store.sandboxes(SandboxQuery(tenantId: "tnt_p", cursor: cursor, limit: 40))
                seen += page.items
                cursor = page.nextCursor
            } while cursor != nil && seen.count < 500
            #expect(seen == expected)
            let evens = try await store.sandboxes(SandboxQuery(tenantId: "tnt_p", metadata: ["even": "y"], limit: 1000)).items
            #expect(evens.count == 65)
            #expect(try await store.sandboxes(SandboxQuery(tenantId: "tnt_a", states: [.running])).items.isEmpty)
            #expect(try await store.sandboxes(SandboxQuery(tenantId: "tnt_a", states: [.destroyed])).items.map(\.id) == ["sbx-1"])
            #expect(try await store.activeSandboxes().count == 130)
            await #expect { try await store.sandboxes(SandboxQuery(tenantId: "t", cursor: "nonsense")) } throws: {
                ($0 as? SandboxError)?.code == .invalidRequest
            }
        }
    }

    @Test("execs newest first; logs keep the head up to the cap, also under concurrent appends; audit newest first")
    func execsLogsAudit() async throws {
        try await withPostgres { store, _ in
            let t = Date()
            var e1 = ExecRecord(id: "ex-1", sandboxId: "sbx-1", tenantId: "tnt_a", argv: ["echo", "hi"], startedAt: t)
            let e2 = ExecRecord(id: "ex-2", sandboxId: "sbx-1", tenantId: "tnt_a", argv: ["true"], startedAt: t + 1)
            try await store.insertExec(e1)
            try await store.insertExec(e2)
            e1.endedAt = t + 0.5
            e1.outcome = .ok
            e1.exitCode = 0
            try await store.updateExec(e1)
            #expect(try await store.execs(sandboxId: "sbx-1", limit: 10) == [e2, e1])
            #expect(try await store.execs(sandboxId: "sbx-1", limit: 1) == [e2])
            await #expect { try await store.insertExec(e1) } throws: { ($0 as? SandboxError)?.code == .invalidState }

            try await store.appendLog(execId: "ex-1", stream: .stdout, data: Array("hello ".utf8), cap: 10)
            try await store.appendLog(execId: "ex-1", stream: .stdout, data: Array("world".utf8), cap: 10)
            try await store.appendLog(execId: "ex-1", stream: .stdout, data: Array("more".utf8), cap: 10)
            try await store.appendLog(execId: "ex-1", stream: .stderr, data: [0, 0xFF], cap: 10)
            #expect(try await store.log(execId: "ex-1", stream: .stdout) == Array("hello worl".utf8))
            #expect(try await store.log(execId: "ex-1", stream: .stderr) == [0, 0xFF])

            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<20 {
                    group.addTask { try await store.appendLog(execId: "ex-2", stream: .stdout, data: Array(repeating: 65, count: 7), cap: 100) }
                }
                try await group.waitForAll()
            }
            #expect(try await store.log(execId: "ex-2", stream: .stdout) == Array(repeating: 65, count: 100))

        }
    }

    @Test("a store URL: socket directory or host and port, the password never shown; a wrong one says what to check")
    func urls() async throws {
        let socket = try PostgresURL("postgres:///db?host=/tmp/pg&user=u")
        #expect(socket.endpoint == .socket(path: "/tmp/pg/.s.PGSQL.5432") && socket.user == "u" && socket.database == "db")
        let tcp = try PostgresURL("postgresql://me:s3cret@127.0.0.1:6543/sbx")
        #expect(tcp.endpoint == .tcp(host: "127.0.0.1", port: 6543) && tcp.password == "s3cret" && tcp.tls == .disable)
        #expect(!tcp.display.contains("s3cret"))
        #expect(throws: SandboxError.self) { try PostgresURL("postgres://127.0.0.1/") }
        #expect(throws: SandboxError.self) { try PostgresURL("mysql://x/y") }

        await #expect { _ = try await PostgresStore.open(url: "postgres://me:s3cret@/nodb?host=/nonexistent-dir") } throws: { e in
            guard let e = e as? SandboxError else { return false }
            return e.message.contains("cannot reach PostgreSQL") && e.message.contains("/nonexistent-dir") && !e.message.contains("s3cret")
        }
    }

    @Test("two stores migrating one empty database at once both open it")
    func concurrentMigrations() async throws {
        let db = try await TestDatabase.create()
        let opened = await withTaskGroup(of: Result<PostgresStore, any Error>.self) { group in
            for _ in 0..<3 { group.addTask { do { return .success(try await db.open()) } catch { return .failure(error) } } }
            return await group.reduce(into: []) { $0.append($1) }
        }
        var stores: [PostgresStore] = []
        for result in opened {
            switch result {
            case .success(let store): stores.append(store)
            case .failure(let error): Issue.record(error)
            }
        }
        #expect(stores.count == 3)
        if let first = stores.first { _ = try await first.ensureTenant(name: "acme") }
        for s in stores { await s.close() }
        await db.drop()
    }
}
