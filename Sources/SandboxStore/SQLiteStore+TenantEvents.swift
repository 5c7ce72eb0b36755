import Foundation
import GRDB
import SandboxCore

extension SQLiteStore {
    /// One write transaction: the batch key is looked for first; each tenant's next numbers follow
    /// its highest stored `seq` (SQLite serializes writers, also across processes).
    public func appendTenantEvents(_ events: [TenantEvent], batch: String) async throws {
        guard !events.isEmpty else { return }
        let rows = try events.map { (e) throws(SandboxError) in (e, try JSONColumn.encode(e.detail)) }
        try await write("appending \(events.count) tenant audit entries") { db in
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM tenant_events WHERE batch = ?", arguments: [batch]) == true { return }
            var next: [String: Int64] = [:]
            var key: String? = batch
            for (e, detail) in rows {
                let seq: Int64
                if let n = next[e.tenantId] {
                    seq = n
                } else {
                    seq = try Int64.fetchOne(
                        db, sql: "SELECT coalesce(max(seq), 0) + 1 FROM tenant_events WHERE tenant_id = ?", arguments: [e.tenantId]) ?? 1
                }
                next[e.tenantId] = seq + 1
                try db.execute(
                    sql: """
                        INSERT INTO tenant_events (tenant_id, seq, at, kind, actor, sandbox_id, correlation, detail, batch)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [e.tenantId, seq, e.at.column, e.kind.rawValue, e.actor, e.sandboxId, e.correlation, detail, key])
                key = nil
            }
        }
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
