import Foundation
import GRDB
import SandboxCore

extension SQLiteStore {
    public func insertExec(_ record: ExecRecord) async throws {
        let args = try Self.arguments(record)
        try await write("storing exec \(record.id)") { db in
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM execs WHERE id = ?", arguments: [record.id]) == true {
                throw SandboxError(.invalidState, "exec \(record.id) is already stored; pick a new id")
            }
            try db.execute(
                sql: """
                    INSERT INTO execs (id, sandbox_id, tenant_id, argv, started_at, ended_at, outcome, exit_code, usage, reason)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, arguments: args)
        }
    }

    public func updateExec(_ record: ExecRecord) async throws {
        let args = try Self.arguments(record)
        let changed = try await write("updating exec \(record.id)") { db in
            try db.execute(
                sql: """
                    UPDATE execs SET sandbox_id = ?2, tenant_id = ?3, argv = ?4, started_at = ?5, ended_at = ?6,
                        outcome = ?7, exit_code = ?8, usage = ?9, reason = ?10
                    WHERE id = ?1
                    """, arguments: args)
            return db.changesCount
        }
        guard changed > 0 else { throw SandboxError(.notFound, "exec \(record.id) is not stored; insert it first") }
    }

    /// The sandbox's latest `limit` execs, newest first.
    public func execs(sandboxId: String, limit: Int) async throws -> [ExecRecord] {
        let limit = min(max(limit, 1), 10_000)
        return try await read("listing execs of sandbox \(sandboxId)") { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM execs WHERE sandbox_id = ? ORDER BY started_at DESC, id DESC LIMIT ?",
                arguments: [sandboxId, limit]
            ).map(Self.exec(from:))
        }
    }

    /// Appends as much of `data` as fits under `cap` (bytes of this exec and stream so far); the
    /// rest is dropped. Once a log is full, appends return without touching the database.
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
        let full = try await write("appending output of exec \(execId)") { db in
            let last = try Row.fetchOne(
                db, sql: "SELECT seq, end_offset FROM exec_logs WHERE exec_id = ? AND stream = ? ORDER BY seq DESC LIMIT 1",
                arguments: [execId, stream.rawValue])
            let seq: Int64 = try last?.decode(forColumn: "seq") ?? -1
            let end: Int = try last?.decode(forColumn: "end_offset") ?? 0
            let room = cap - end
            guard room > 0 else { return true }
            let held = offset.map { min(max(end - $0, 0), data.count) } ?? 0
            guard held < data.count else { return false }
            let chunk = Data(data.dropFirst(held).prefix(room))
            try db.execute(
                sql: "INSERT INTO exec_logs (exec_id, stream, seq, end_offset, data) VALUES (?, ?, ?, ?, ?)",
                arguments: [execId, stream.rawValue, seq + 1, end + chunk.count, chunk])
            return end + chunk.count >= cap
        }
        if full {
            fullLogs.withLock { set in
                if set.count >= 10_000 { set.removeAll(keepingCapacity: true) }
                set.insert(key)
            }
        }
    }

    public func log(execId: String, stream: StdStream) async throws -> [UInt8] {
        try await read("reading output of exec \(execId)") { db in
            var out: [UInt8] = []
            let chunks = try Data.fetchCursor(
                db, sql: "SELECT data FROM exec_logs WHERE exec_id = ? AND stream = ? ORDER BY seq", arguments: [execId, stream.rawValue])
            while let chunk = try chunks.next() { out.append(contentsOf: chunk) }
            return out
        }
    }

    static func arguments(_ r: ExecRecord) throws(SandboxError) -> StatementArguments {
        let argv = try JSONColumn.encode(r.argv)
        let usage = try r.usage.map { (u) throws(SandboxError) in try JSONColumn.encode(u) }
        let values: [(any DatabaseValueConvertible)?] = [
            r.id, r.sandboxId, r.tenantId, argv, r.startedAt.column, r.endedAt?.column, r.outcome?.rawValue,
            r.exitCode, usage, r.reason,
        ]
        return StatementArguments(values)
    }

    static func exec(from row: Row) throws -> ExecRecord {
        let id: String = try row.decode(forColumn: "id")
        var outcome: Outcome?
        if let text: String = try row.decode(forColumn: "outcome") {
            guard let o = Outcome(rawValue: text) else {
                throw SandboxError(.system, "exec \(id) has unknown outcome '\(text)'; was it written by a newer sandboxer?")
            }
            outcome = o
        }
        return ExecRecord(
            id: id, sandboxId: try row.decode(forColumn: "sandbox_id"), tenantId: try row.decode(forColumn: "tenant_id"),
            argv: try JSONColumn.decode([String].self, row, "argv"), startedAt: try JSONColumn.date(row, "started_at"),
            endedAt: try JSONColumn.dateIfPresent(row, "ended_at"), outcome: outcome,
            exitCode: try row.decode(forColumn: "exit_code"), usage: try JSONColumn.decodeIfPresent(Usage.self, row, "usage"),
            reason: try row.decode(forColumn: "reason"))
    }
}
