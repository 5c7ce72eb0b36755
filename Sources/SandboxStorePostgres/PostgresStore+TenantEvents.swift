import Foundation
import PostgresNIO
import SandboxCore
import SandboxStore

extension PostgresStore {
    /// One transaction (``appendTrail(_:to:ownerLocks:batch:what:)``) under an advisory lock on the
    /// batch key (a stored key: nothing is done), then one per tenant.
    public func appendTenantEvents(_ events: [TenantEvent], batch: String) async throws {
        let rows = try events.map { (e) throws(SandboxError) in try e.trailRow() }
        try await appendTrail(
            rows, to: .tenant, ownerLocks: LockSpace.tenantEvents, batch: batch, what: "appending \(events.count) tenant audit entries")
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
