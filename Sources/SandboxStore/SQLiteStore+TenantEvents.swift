import Foundation
import GRDB
import SandboxCore

extension SQLiteStore {
    /// One write transaction (``appendTrail(_:to:batch:what:)``): the batch key is looked for first;
    /// each tenant's next numbers follow its highest stored `seq`.
    public func appendTenantEvents(_ events: [TenantEvent], batch: String) async throws {
        let rows = try events.map { (e) throws(SandboxError) in try e.trailRow() }
        try await appendTrail(rows, to: .tenant, batch: batch, what: "appending \(events.count) tenant audit entries")
    }

    public func tenantEvents(tenantId: String, after seq: Int64, limit: Int) async throws -> [TenantEvent] {
        let limit = min(max(limit, 1), 10_000)
        return try await read("reading the audit trail of tenant \(tenantId)") { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM tenant_events WHERE tenant_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                arguments: [tenantId, seq, limit]
            ).map { row in
                var e = TenantEvent(
                    at: try JSONColumn.date(row, "at"), tenantId: try row.decode(forColumn: "tenant_id"),
                    sandboxId: try row.decode(forColumn: "sandbox_id"),
                    kind: try AuditKind(stored: try row.decode(forColumn: "kind")), actor: try row.decode(forColumn: "actor"),
                    correlation: try row.decode(forColumn: "correlation"),
                    detail: try JSONColumn.decode([String: EventValue].self, row, "detail"))
                e.seq = try row.decode(forColumn: "seq")
                return e
            }
        }
    }
}
