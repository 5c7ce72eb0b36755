import Foundation
import PostgresNIO
import SandboxCore
import SandboxStore

extension PostgresStore {
    public func insertExec(_ record: ExecRecord) async throws {
        let json = try JSONColumn.encode(record)
        let inserted = try await rows(
            "storing exec \(record.id)",
            """
            INSERT INTO execs (id, sandbox_id, started_at, record) VALUES (\(record.id), \(record.sandboxId), \(record.startedAt.column), \(json))
            ON CONFLICT (id) DO NOTHING RETURNING id
            """)
        if inserted.isEmpty { throw SandboxError(.invalidState, "exec \(record.id) is already stored; pick a new id") }
    }

    public func updateExec(_ record: ExecRecord) async throws {
        let json = try JSONColumn.encode(record)
        let changed = try await rows(
            "updating exec \(record.id)",
            """
            UPDATE execs SET sandbox_id = \(record.sandboxId), started_at = \(record.startedAt.column), record = \(json)
            WHERE id = \(record.id) RETURNING id
            """)
        guard !changed.isEmpty else { throw SandboxError(.notFound, "exec \(record.id) is not stored; insert it first") }
    }

    /// The sandbox's latest `limit` execs, newest first.
    public func execs(sandboxId: String, limit: Int) async throws -> [ExecRecord] {
        let limit = min(max(limit, 1), 10_000)
        return try await fetch(
            "listing execs of sandbox \(sandboxId)",
            "SELECT record FROM execs WHERE sandbox_id = \(sandboxId) ORDER BY started_at DESC, id DESC LIMIT \(limit)"
        ) { row in try JSONColumn.decode(ExecRecord.self, text: try row.get("record"), what: "an exec record") }
    }

    /// Appends as much of `data` as fits under `cap` (bytes of this exec and stream so far); the
    /// rest is dropped. Appends to one log are serialized by an advisory lock on it; once a log is
    /// full, appends return without touching the database.
    public func appendLog(execId: String, stream: StdStream, data: [UInt8], cap: Int) async throws {
        let key = "\(stream.rawValue):\(execId)"
        guard !data.isEmpty, cap > 0, !fullLogs.withLock({ $0.contains(key) }) else { return }
        let logger = self.logger
        let bytes = Data(data)
        let full = try await transaction("appending output of exec \(execId)") { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(LockSpace.execLog), hashtext(\(key)))", logger: logger)
            // One statement: the next chunk is what still fits under the cap, or nothing.
            let written = try await connection.rows(
                """
                WITH log AS (SELECT coalesce(max(seq), -1) AS seq, coalesce(max(end_offset), 0) AS used
                             FROM exec_logs WHERE exec_id = \(execId) AND stream = \(stream.rawValue))
                INSERT INTO exec_logs (exec_id, stream, seq, end_offset, data)
                SELECT \(execId), \(stream.rawValue), log.seq + 1, log.used + least(length(\(bytes)), (\(cap) - log.used)::int),
                       substring(\(bytes) FROM 1 FOR (\(cap) - log.used)::int)
                FROM log WHERE log.used < \(cap)
                RETURNING end_offset
                """, logger)
            return try written.first.map { try $0.get("end_offset", as: Int.self) >= cap } ?? true
        }
        if full {
            fullLogs.withLock { set in
                if set.count >= 10_000 { set.removeAll(keepingCapacity: true) }
                set.insert(key)
            }
        }
    }

    public func log(execId: String, stream: StdStream) async throws -> [UInt8] {
        let chunks = try await fetch(
            "reading output of exec \(execId)",
            "SELECT data FROM exec_logs WHERE exec_id = \(execId) AND stream = \(stream.rawValue) ORDER BY seq"
        ) { row in try row.get("data", as: Data.self) }
        return chunks.reduce(into: []) { $0.append(contentsOf: $1) }
    }

    public func appendAudit(_ entry: AuditEntry) async throws {
        try await rows(
            "writing an audit entry",
            """
            INSERT INTO audit (at, tenant_id, actor, action, target, result, detail)
            VALUES (\(entry.at.column), \(entry.tenantId), \(entry.actor), \(entry.action), \(entry.target), \(entry.result), \(entry.detail))
            """)
    }

    /// The tenant's latest `limit` audit entries, newest first, with their ids.
    public func audit(tenantId: String, limit: Int) async throws -> [AuditEntry] {
        let limit = min(max(limit, 1), 10_000)
        return try await fetch(
            "reading the audit log of tenant \(tenantId)", "SELECT * FROM audit WHERE tenant_id = \(tenantId) ORDER BY id DESC LIMIT \(limit)"
        ) { row in
            AuditEntry(
                id: try row.get("id", as: Int64.self), at: try row.date("at"), tenantId: try row.get("tenant_id"),
                actor: try row.get("actor"), action: try row.get("action"), target: try row.get("target"),
                result: try row.get("result"), detail: try row.get("detail"))
        }
    }
}

/// The first key of the two-key advisory locks, one space per purpose (migrations use the
/// one-key form, a space of its own).
enum LockSpace {
    static let execLog: Int32 = 1
    static let submit: Int32 = 2
    static let claim: Int32 = 3
    static let runLog: Int32 = 4
    static let sandboxEvents: Int32 = 5
}
