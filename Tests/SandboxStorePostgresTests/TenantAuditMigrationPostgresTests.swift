import Foundation
import SandboxCore
import SandboxStore
import Testing
@testable import SandboxStorePostgres

/// Schema v8 (`v8-tenant-audit`) on PostgreSQL: the route audit log of earlier versions moves
/// into the tenant trail, numbered per tenant in its old order, and its table is gone.
@Suite("PostgreSQL: the route audit log becomes the tenant trail", .postgres)
struct TenantAuditMigrationPostgresTests {
    @Test("old route audit rows become api.request entries of their tenant's trail, numbered in their order; new entries follow them")
    func migratesOldRows() async throws {
        let db = try await TestDatabase.create()
        do {
            // A database as the v7 schema left it, with route audit rows.
            try await TestDatabase.execute(db.url, "CREATE TABLE schema_migrations (version TEXT PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)")
            for migration in PostgresSchema.migrations {
                for statement in migration.statements { try await TestDatabase.execute(db.url, statement) }
                try await TestDatabase.execute(db.url, "INSERT INTO schema_migrations VALUES ('\(migration.version)', 0)")
                if migration.version == "v7-event-batches" { break }
            }
            try await TestDatabase.execute(db.url, """
                INSERT INTO audit (at, tenant_id, actor, action, target, result, detail) VALUES
                    (10, 'tnt_a', 'key_1', 'sandbox.create', 'sbx-1', '201', NULL),
                    (11, 'tnt_b', 'server', 'sandbox.delete', 'sbx-9', 'ok', 'ttl expired'),
                    (12, 'tnt_a', 'key_1', 'file.write', 'sbx-1:/workspace/x', '200', NULL)
                """)
            let store = try await db.open()
            let a = try await store.tenantEvents(tenantId: "tnt_a", after: 0, limit: 10)
            #expect(a.map(\.seq) == [1, 2] && a.allSatisfy { $0.kind == .apiRequest && $0.actor == "key_1" })
            #expect(a[1].detail == ["action": "file.write", "target": "sbx-1:/workspace/x", "result": "200"])
            #expect(a[0].at == Date(timeIntervalSinceReferenceDate: 10))
            let b = try await store.tenantEvents(tenantId: "tnt_b", after: 0, limit: 10)
            #expect(b.map { $0.detail["detail"] } == ["ttl expired"] && b.first?.seq == 1)
            try await store.appendTenantEvents([TenantEvent(tenantId: "tnt_a", kind: .keyCreate, actor: "cli")], batch: UUID().uuidString)
            #expect(try await store.tenantEvents(tenantId: "tnt_a", after: 2, limit: 10).map(\.seq) == [3])
            await #expect(throws: (any Error).self) { try await TestDatabase.execute(db.url, "SELECT 1 FROM audit") }
            await store.close()
        } catch {
            await db.drop()
            throw error
        }
        await db.drop()
    }
}
