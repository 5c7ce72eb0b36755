import Foundation
import GRDB
import SandboxCore

extension SQLiteStore {
    /// One write transaction: each sandbox's next numbers follow its highest stored `seq` (SQLite
    /// serializes writers, also across processes, so two appenders never see the same maximum).
    public func appendEvents(_ events: [AuditEvent]) async throws {
        try await append(events, batch: nil)
    }

    /// The same transaction, which first looks for the batch key and stores nothing when it is there.
    public func appendEvents(_ events: [AuditEvent], batch: String) async throws {
        try await append(events, batch: batch)
    }

    private func append(_ events: [AuditEvent], batch: String?) async throws(SandboxError) {
        guard !events.isEmpty else { return }
        let rows = try events.map { (e) throws(SandboxError) in (e, try JSONColumn.encode(e.detail)) }
        try await write("appending \(events.count) audit trail entries") { db in
            if let batch, try Bool.fetchOne(db, sql: "SELECT 1 FROM sandbox_events WHERE batch = ?", arguments: [batch]) == true {
                return
            }
            var next: [String: Int64] = [:]
            var key = batch
            for (e, detail) in rows {
                let seq: Int64
                if let n = next[e.sandboxId] {
                    seq = n
                } else {
                    seq = try Int64.fetchOne(
                        db, sql: "SELECT coalesce(max(seq), 0) + 1 FROM sandbox_events WHERE sandbox_id = ?", arguments: [e.sandboxId]) ?? 1
                }
                next[e.sandboxId] = seq + 1
                try db.execute(
                    sql: "INSERT INTO sandbox_events (sandbox_id, seq, at, kind, actor, correlation, detail, batch) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    arguments: [e.sandboxId, seq, e.at.column, e.kind.rawValue, e.actor, e.correlation, detail, key])
                key = nil
            }
        }
    }

    public func events(sandboxId: String, after seq: Int64, limit: Int) async throws -> [AuditEvent] {
        let limit = min(max(limit, 1), 10_000)
        return try await read("reading the audit trail of sandbox \(sandboxId)") { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM sandbox_events WHERE sandbox_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                arguments: [sandboxId, seq, limit]
            ).map { row in
                var e = AuditEvent(
                    at: try JSONColumn.date(row, "at"), sandboxId: try row.decode(forColumn: "sandbox_id"),
                    kind: try AuditKind(stored: try row.decode(forColumn: "kind")), actor: try row.decode(forColumn: "actor"),
                    correlation: try row.decode(forColumn: "correlation"),
                    detail: try JSONColumn.decode([String: EventValue].self, row, "detail"))
                e.seq = try row.decode(forColumn: "seq")
                return e
            }
        }
    }
}
