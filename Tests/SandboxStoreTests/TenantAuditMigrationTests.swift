import Foundation
import GRDB
import SandboxCore
import Testing
@testable import SandboxStore

/// Schema v8 (`v8-tenant-audit`): the route audit log of earlier versions moves into the tenant
/// trail, numbered per tenant in its old order, and its table is gone.
@Suite("SQLite: the route audit log becomes the tenant trail")
struct TenantAuditMigrationTests {
    @Test("old route audit rows become api.request entries of their tenant's trail, numbered in their order; new entries follow them")
    func migratesOldRows() async throws {
        let temp = TempData()
        defer { temp.cleanup() }
        try FileManager.default.createDirectory(atPath: temp.dir, withIntermediateDirectories: true)
        let path = temp.dir + "/" + StoreFiles.databaseName
        do {
            let queue = try DatabaseQueue(path: path)
            try Schema.migrator.migrate(queue, upTo: "v7-event-batches")
            try await queue.write { db in
                let rows: [(Double, String, String, String, String, String, String?)] = [
                    (10, "tnt_a", "key_1", "sandbox.create", "sbx-1", "201", nil),
                    (11, "tnt_b", "server", "sandbox.delete", "sbx-9", "ok", "ttl expired"),
                    (12, "tnt_a", "key_1", "file.write", "sbx-1:/workspace/x", "200", nil),
                ]
                for r in rows {
                    try db.execute(
                        sql: "INSERT INTO audit (at, tenant_id, actor, action, target, result, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        arguments: [r.0, r.1, r.2, r.3, r.4, r.5, r.6])
                }
            }
            try queue.close()
        }
        let store = try SQLiteStore(directory: temp.dir)
        defer { try? store.close() }
        let a = try await store.tenantEvents(tenantId: "tnt_a", after: 0, limit: 10)
        #expect(a.map(\.seq) == [1, 2] && a.allSatisfy { $0.kind == .apiRequest && $0.actor == "key_1" })
        #expect(a.map { $0.detail["action"] } == ["sandbox.create", "file.write"])
        #expect(a[1].detail == ["action": "file.write", "target": "sbx-1:/workspace/x", "result": "200"])
        #expect(a[0].at == Date(timeIntervalSinceReferenceDate: 10))
        let b = try await store.tenantEvents(tenantId: "tnt_b", after: 0, limit: 10)
        #expect(b.map { $0.detail["detail"] } == ["ttl expired"] && b.first?.seq == 1)

        try await store.appendTenantEvents([TenantEvent(tenantId: "tnt_a", kind: .keyCreate, actor: "cli")], batch: UUID().uuidString)
        #expect(try await store.tenantEvents(tenantId: "tnt_a", after: 2, limit: 10).map(\.seq) == [3])
        let tables = try await store.read("listing tables") { db in try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'") }
        #expect(!tables.contains("audit") && tables.contains("tenant_events"))
    }
}
