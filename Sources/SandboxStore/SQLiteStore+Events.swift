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
        let rows = try events.map { (e) throws(SandboxError) in try e.trailRow() }
        try await appendTrail(rows, to: .sandbox, batch: batch, what: "appending \(events.count) audit trail entries")
    }

    /// Appends `rows` to `table` in one write transaction: nothing when `batch` is stored already;
    /// each owner's numbers follow its highest stored `seq` (SQLite serializes writers, also across
    /// processes, so two appenders never see the same maximum); the first row carries the batch key.
    func appendTrail(_ rows: [TrailRow], to table: TrailTable, batch: String?, what: String) async throws(SandboxError) {
        guard !rows.isEmpty else { return }
        let insert = table.insert { _ in "?" }
        try await write(what) { db in
            if let batch, try Bool.fetchOne(db, sql: "SELECT 1 FROM \(table.name) WHERE batch = ?", arguments: [batch]) == true {
                return
            }
            var next: [String: Int64] = [:]
            var key = batch
            for row in rows {
                let seq = try next[row.owner]
                    ?? Int64.fetchOne(
                        db, sql: "SELECT coalesce(max(seq), 0) + 1 FROM \(table.name) WHERE \(table.owner) = ?", arguments: [row.owner]) ?? 1
                next[row.owner] = seq + 1
                let values: [(any DatabaseValueConvertible)?] = [row.owner, seq, row.at] + row.texts + [key]
                try db.execute(sql: insert, arguments: StatementArguments(values))
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
