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
        let rows = try events.map { (e) throws(SandboxError) in try e.trailRow() }
        try await appendTrail(
            rows, to: .sandbox, ownerLocks: LockSpace.sandboxEvents, batch: batch, what: "appending \(events.count) audit trail entries")
    }

    /// Appends `rows` to `table` in one transaction: under an advisory lock on the batch key, nothing
    /// when it is stored already; then an advisory lock per owner (taken in id order, so two appenders
    /// never deadlock) serializes that owner's appenders across the fleet, and its numbers follow its
    /// highest stored `seq`; the first row carries the batch key.
    func appendTrail(_ rows: [TrailRow], to table: TrailTable, ownerLocks: Int32, batch: String?, what: String) async throws(SandboxError) {
        guard !rows.isEmpty else { return }
        let logger = self.logger
        let insert = table.insert { "$\($0)" }
        try await transaction(what) { connection in
            if let batch {
                try await connection.query("SELECT pg_advisory_xact_lock(\(LockSpace.eventBatch), hashtext(\(batch)))", logger: logger)
                let seen = try await connection.rows("SELECT 1 AS one FROM \(unescaped: table.name) WHERE batch = \(batch)", logger)
                if !seen.isEmpty { return }
            }
            var next: [String: Int64] = [:]
            for id in Set(rows.map(\.owner)).sorted() {
                try await connection.query("SELECT pg_advisory_xact_lock(\(ownerLocks), hashtext(\(id)))", logger: logger)
                let top = try await connection.rows(
                    "SELECT coalesce(max(seq), 0)::bigint AS top FROM \(unescaped: table.name) WHERE \(unescaped: table.owner) = \(id)", logger)
                next[id] = (try top.first?.get("top", as: Int64.self) ?? 0) + 1
            }
            var key = batch
            for row in rows {
                let seq = next[row.owner] ?? 1
                next[row.owner] = seq + 1
                var binds = PostgresBindings()
                binds.append(row.owner)
                binds.append(seq)
                binds.append(row.at)
                for text in row.texts { binds.append(text) }
                binds.append(key)
                try await connection.query(PostgresQuery(unsafeSQL: insert, binds: binds), logger: logger)
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
