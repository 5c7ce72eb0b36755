import Foundation
import PostgresNIO
import SandboxCore
import SandboxStore

extension PostgresStore {
    /// One transaction: an advisory lock per sandbox (taken in id order, so two appenders never
    /// deadlock) serializes its appenders across the fleet; each sandbox's numbers then follow its
    /// highest stored `seq`.
    public func appendEvents(_ events: [AuditEvent]) async throws {
        try await append(events, batch: nil)
    }

    /// The same transaction, under an advisory lock on the batch key: when the key is stored
    /// already, nothing is done.
    public func appendEvents(_ events: [AuditEvent], batch: String) async throws {
        try await append(events, batch: batch)
    }

    private func append(_ events: [AuditEvent], batch: String?) async throws(SandboxError) {
        guard !events.isEmpty else { return }
        let rows = try events.map { (e) throws(SandboxError) in (e, try JSONColumn.encode(e.detail)) }
        let logger = self.logger
        try await transaction("appending \(events.count) audit trail entries") { connection in
            if let batch {
                try await connection.query("SELECT pg_advisory_xact_lock(\(LockSpace.eventBatch), hashtext(\(batch)))", logger: logger)
                let seen = try await connection.rows("SELECT 1 AS one FROM sandbox_events WHERE batch = \(batch)", logger)
                if !seen.isEmpty { return }
            }
            var key = batch
            var next: [String: Int64] = [:]
            for id in Set(events.map(\.sandboxId)).sorted() {
                try await connection.query("SELECT pg_advisory_xact_lock(\(LockSpace.sandboxEvents), hashtext(\(id)))", logger: logger)
                let top = try await connection.rows(
                    "SELECT coalesce(max(seq), 0)::bigint AS top FROM sandbox_events WHERE sandbox_id = \(id)", logger)
                next[id] = (try top.first?.get("top", as: Int64.self) ?? 0) + 1
            }
            for (e, detail) in rows {
                let seq = next[e.sandboxId] ?? 1
                next[e.sandboxId] = seq + 1
                try await connection.query(
                    """
                    INSERT INTO sandbox_events (sandbox_id, seq, at, kind, actor, correlation, detail, batch)
                    VALUES (\(e.sandboxId), \(seq), \(e.at.column), \(e.kind.rawValue), \(e.actor), \(e.correlation), \(detail), \(key))
                    """, logger: logger)
                key = nil
            }
        }
    }

    public func events(sandboxId: String, after seq: Int64, limit: Int) async throws -> [AuditEvent] {
        let limit = min(max(limit, 1), 10_000)
        return try await fetch(
            "reading the audit trail of sandbox \(sandboxId)",
            "SELECT * FROM sandbox_events WHERE sandbox_id = \(sandboxId) AND seq > \(seq) ORDER BY seq LIMIT \(limit)"
        ) { row in
            var e = AuditEvent(
                at: try row.date("at"), sandboxId: try row.get("sandbox_id"), kind: try AuditKind(stored: try row.get("kind")), actor: try row.get("actor"),
                correlation: try row.get("correlation"),
                detail: try JSONColumn.decode([String: EventValue].self, text: try row.get("detail"), what: "an audit trail entry"))
            e.seq = try row.get("seq", as: Int64.self)
            return e
        }
    }
}
