import Foundation
import PostgresNIO
import SandboxCore
import SandboxStore

extension PostgresStore {
    /// One transaction under an advisory lock on the batch key (a stored key: nothing is done),
    /// then one per tenant (taken in id order) that serializes its appenders across the fleet.
    public func appendTenantEvents(_ events: [TenantEvent], batch: String) async throws {
        guard !events.isEmpty else { return }
        let rows = try events.map { (e) throws(SandboxError) in (e, try JSONColumn.encode(e.detail)) }
        let logger = self.logger
        try await transaction("appending \(events.count) tenant audit entries") { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(LockSpace.eventBatch), hashtext(\(batch)))", logger: logger)
            if !(try await connection.rows("SELECT 1 AS one FROM tenant_events WHERE batch = \(batch)", logger)).isEmpty { return }
            var next: [String: Int64] = [:]
            for id in Set(events.map(\.tenantId)).sorted() {
                try await connection.query("SELECT pg_advisory_xact_lock(\(LockSpace.tenantEvents), hashtext(\(id)))", logger: logger)
                let top = try await connection.rows(
                    "SELECT coalesce(max(seq), 0)::bigint AS top FROM tenant_events WHERE tenant_id = \(id)", logger)
                next[id] = (try top.first?.get("top", as: Int64.self) ?? 0) + 1
            }
            var key: String? = batch
            for (e, detail) in rows {
                let seq = next[e.tenantId] ?? 1
                next[e.tenantId] = seq + 1
                try await connection.query(
                    """
                    INSERT INTO tenant_events (tenant_id, seq, at, kind, actor, sandbox_id, correlation, detail, batch)
                    VALUES (\(e.tenantId), \(seq), \(e.at.column), \(e.kind.rawValue), \(e.actor), \(e.sandboxId), \(e.correlation), \(detail), \(key))
                    """, logger: logger)
                key = nil
            }
        }
    }

    public func tenantEvents(tenantId: String, after seq: Int64, limit: Int) async throws -> [TenantEvent] {
        let limit = min(max(limit, 1), 10_000)
        return try await fetch(
            "reading the audit trail of tenant \(tenantId)",
            "SELECT * FROM tenant_events WHERE tenant_id = \(tenantId) AND seq > \(seq) ORDER BY seq LIMIT \(limit)"
        ) { row in
            var e = TenantEvent(
                at: try row.date("at"), tenantId: try row.get("tenant_id"), sandboxId: try row.get("sandbox_id"),
                kind: try AuditKind(stored: try row.get("kind")), actor: try row.get("actor"), correlation: try row.get("correlation"),
                detail: try JSONColumn.decode([String: EventValue].self, text: try row.get("detail"), what: "a tenant audit entry"))
            e.seq = try row.get("seq", as: Int64.self)
            return e
        }
    }
}
