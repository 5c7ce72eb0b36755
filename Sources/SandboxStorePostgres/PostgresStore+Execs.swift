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
        try await appendLog(execId, stream, data, cap, offset: nil)
    }

    /// Skips the part of `data` the log already holds (its end is past `offset`).
    public func appendLog(execId: String, stream: StdStream, data: [UInt8], cap: Int, at offset: Int) async throws {
        try await appendLog(execId, stream, data, cap, offset: offset)
    }

    private func appendLog(_ execId: String, _ stream: StdStream, _ data: [UInt8], _ cap: Int, offset: Int?) async throws(SandboxError) {
        let key = "\(stream.rawValue):\(execId)"
        guard !data.isEmpty, cap > 0, !fullLogs.withLock({ $0.contains(key) }) else { return }
        let logger = self.logger
        let bytes = Data(data)
        let full = try await transaction("appending output of exec \(execId)") { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(LockSpace.execLog), hashtext(\(key)))", logger: logger)
            let log = try await connection.rows(
                """
                SELECT coalesce(max(seq), -1)::bigint AS seq, coalesce(max(end_offset), 0)::bigint AS used
                FROM exec_logs WHERE exec_id = \(execId) AND stream = \(stream.rawValue)
                """, logger)
            let seq = try log.first?.get("seq", as: Int64.self) ?? -1
            let used = Int(try log.first?.get("used", as: Int64.self) ?? 0)
            guard used < cap else { return true }
            // The part a replay finds stored already is skipped.
            let held = offset.map { min(max(used - $0, 0), bytes.count) } ?? 0
            guard held < bytes.count else { return false }
            let chunk = bytes.dropFirst(held).prefix(cap - used)
            try await connection.query(
                """
                INSERT INTO exec_logs (exec_id, stream, seq, end_offset, data)
                VALUES (\(execId), \(stream.rawValue), \(seq + 1), \(used + chunk.count), \(Data(chunk)))
                """, logger: logger)
            return used + chunk.count >= cap
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
}

/// The first key of the two-key advisory locks, one space per purpose (migrations use the
/// one-key form, a space of its own).
enum LockSpace {
    static let execLog: Int32 = 1
    static let submit: Int32 = 2
    static let claim: Int32 = 3
    static let runLog: Int32 = 4
    static let sandboxEvents: Int32 = 5
    static let eventBatch: Int32 = 6
    static let tenantEvents: Int32 = 7
}
