import Foundation
import GRDB
import Logging
import SandboxCore

extension SQLiteStore {
    public func insertSandbox(_ record: SandboxRecord) async throws {
        let args = try Self.arguments(record)
        try await write("storing sandbox \(record.id)") { db in
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM sandboxes WHERE id = ?", arguments: [record.id]) == true {
                throw SandboxError(.invalidState, "sandbox \(record.id) is already stored; pick a new id")
            }
            try db.execute(
                sql: """
                    INSERT INTO sandboxes (id, tenant_id, state, profile, created_at, updated_at, expires_at,
                        idle_timeout_seconds, last_activity_at, metadata, reason, node, exec_count, cpu_ms, template_digest,
                        envd_access)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, arguments: args)
        }
    }

    public func updateSandbox(_ record: SandboxRecord) async throws {
        let args = try Self.arguments(record)
        let changed = try await write("updating sandbox \(record.id)") { db in
            try db.execute(
                sql: """
                    UPDATE sandboxes SET tenant_id = ?2, state = ?3, profile = ?4, created_at = ?5, updated_at = ?6,
                        expires_at = ?7, idle_timeout_seconds = ?8, last_activity_at = ?9, metadata = ?10, reason = ?11,
                        node = ?12, exec_count = ?13, cpu_ms = ?14, template_digest = ?15,
                        envd_access = ?16
                    WHERE id = ?1
                    """, arguments: args)
            return db.changesCount
        }
        guard changed > 0 else { throw SandboxError(.notFound, "sandbox \(record.id) is not stored; insert it first") }
    }

    public func sandbox(id: String) async throws -> SandboxRecord? {
        try await read("reading sandbox \(id)") { db in
            try Row.fetchOne(db, sql: "SELECT * FROM sandboxes WHERE id = ?", arguments: [id]).map(Self.sandbox(from:))
        }
    }

    /// A tenant's sandboxes oldest first (by creation time, then id). `states` nil or empty: any
    /// state. The cursor is only valid with the same filters.
    public func sandboxes(_ query: SandboxQuery) async throws -> Page<SandboxRecord> {
        let limit = min(max(query.limit, 1), 1000)
        var sql = "SELECT * FROM sandboxes WHERE tenant_id = ?"
        var args: [(any DatabaseValueConvertible)?] = [query.tenantId]
        if let states = query.states, !states.isEmpty {
            sql += " AND state IN (\(databaseQuestionMarks(count: states.count)))"
            args += states.map(\.rawValue)
        }
        if let cursor = query.cursor {
            let after = try PageCursor.sqliteCondition(cursor, newestFirst: false)
            sql += after.sql
            args += after.args
        }
        for (key, value) in query.metadata.sorted(by: { $0.key < $1.key }) {
            sql += " AND EXISTS (SELECT 1 FROM json_each(sandboxes.metadata) m WHERE m.key = ? AND m.value = ?)"
            args += [key, value]
        }
        sql += " ORDER BY created_at, id LIMIT ?"
        args.append(limit + 1)
        let statementArgs = StatementArguments(args)
        let logger = self.logger
        let records = try await read("listing sandboxes of tenant \(query.tenantId)") { [sql] db in
            try Row.fetchAll(db, sql: sql, arguments: statementArgs).compactMap { Self.decodable($0, logger) }
        }
        guard records.count > limit else { return Page(items: records, nextCursor: nil) }
        let items = Array(records.prefix(limit))
        let last = items[items.count - 1]
        return Page(items: items, nextCursor: PageCursor(createdAt: last.createdAt.column, id: last.id).text)
    }

    public func activeSandboxes() async throws -> [SandboxRecord] {
        let states = SandboxState.allCases.filter { !$0.isFinal }.map(\.rawValue)
        let logger = self.logger
        return try await read("listing active sandboxes") { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM sandboxes WHERE state IN (\(databaseQuestionMarks(count: states.count))) ORDER BY created_at, id",
                arguments: StatementArguments(states)
            ).compactMap { Self.decodable($0, logger) }
        }
    }

    /// A row as a record, or nil (logged) when it cannot be read back — one bad row must not stop
    /// a listing or the server's start-up.
    static func decodable(_ row: Row, _ logger: Logger) -> SandboxRecord? {
        do { return try sandbox(from: row) } catch {
            logger.error("a sandbox record cannot be read; skipped", metadata: ["id": "\(row["id"] as String? ?? "?")", "error": "\(error)"])
            return nil
        }
    }

    static func arguments(_ r: SandboxRecord) throws(SandboxError) -> StatementArguments {
        let profile = try JSONColumn.encode(r.profile)
        let metadata = try JSONColumn.encode(r.metadata)
        let values: [(any DatabaseValueConvertible)?] = [
            r.id, r.tenantId, r.state.rawValue, profile, r.createdAt.column, r.updatedAt.column, r.expiresAt?.column,
            r.idleTimeoutSeconds, r.lastActivityAt.column, metadata, r.reason, r.node, r.execCount, r.cpuMs,
            r.templateDigest, try encodeIfPresent(r.envdAccess),
        ]
        return StatementArguments(values)
    }

    private static func encodeIfPresent(_ access: EnvdAccess?) throws(SandboxError) -> String? {
        guard let access else { return nil }
        return try JSONColumn.encode(access)
    }

    static func sandbox(from row: Row) throws -> SandboxRecord {
        let id: String = try row.decode(forColumn: "id")
        let stateText: String = try row.decode(forColumn: "state")
        guard let state = SandboxState(rawValue: stateText) else {
            throw SandboxError(.system, "sandbox \(id) has unknown state '\(stateText)'; was it written by a newer sandboxer?")
        }
        return SandboxRecord(
            id: id, tenantId: try row.decode(forColumn: "tenant_id"), state: state,
            profile: try JSONColumn.decode(Profile.self, row, "profile"),
            createdAt: try JSONColumn.date(row, "created_at"), updatedAt: try JSONColumn.date(row, "updated_at"),
            expiresAt: try JSONColumn.dateIfPresent(row, "expires_at"),
            idleTimeoutSeconds: try row.decode(forColumn: "idle_timeout_seconds"),
            lastActivityAt: try JSONColumn.date(row, "last_activity_at"),
            metadata: try JSONColumn.decode([String: String].self, row, "metadata"),
            reason: try row.decode(forColumn: "reason"), node: try row.decode(forColumn: "node"),
            execCount: try row.decode(forColumn: "exec_count"), cpuMs: try row.decode(forColumn: "cpu_ms"),
            templateDigest: try row.decode(forColumn: "template_digest"),
            envdAccess: try JSONColumn.decodeIfPresent(EnvdAccess.self, row, "envd_access"))
    }
}

/// The opaque page cursor: the sort key (creation time, id) of the last item returned. Shared by
/// every engine, so a cursor means the same thing on SQLite and PostgreSQL.
public struct PageCursor: Equatable, Sendable {
    public var createdAt: Double
    public var id: String

    public init(createdAt: Double, id: String) {
        self.createdAt = createdAt
        self.id = id
    }

    /// Reads a cursor this store gave out; anything else is an `invalid_request`.
    public init(text: String) throws(SandboxError) {
        var b64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        b64 += String(repeating: "=", count: (4 - b64.count % 4) % 4)
        guard let data = Data(base64Encoded: b64), let plain = String(data: data, encoding: .utf8) else { throw Self.bad }
        let parts = plain.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "v1", let bits = UInt64(parts[1], radix: 16), !parts[2].isEmpty else { throw Self.bad }
        createdAt = Double(bitPattern: bits)
        id = String(parts[2])
    }

    public var text: String {
        Data("v1:\(String(createdAt.bitPattern, radix: 16)):\(id)".utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static let bad = SandboxError(.invalidRequest, "cursor is not one this server gave out; list again without a cursor")

    /// The SQLite condition (and its arguments) for the rows after the cursor `text` in
    /// (created_at, id) order — before it when the listing is newest first.
    static func sqliteCondition(_ text: String, newestFirst: Bool) throws(SandboxError) -> (sql: String, args: [(any DatabaseValueConvertible)?]) {
        let at = try PageCursor(text: text), op = newestFirst ? "<" : ">"
        return (" AND (created_at \(op) ? OR (created_at = ? AND id \(op) ?))", [at.createdAt, at.createdAt, at.id])
    }
}

extension Page {
    /// The page of `records` (fetched with `limit + 1` rows): at most `limit` items, and the cursor
    /// of the last one when more followed. Every engine pages this way.
    public static func of(_ records: [Item], limit: Int, cursor: (Item) -> PageCursor) -> Page {
        guard records.count > limit, limit > 0 else { return Page(items: records, nextCursor: nil) }
        let items = Array(records.prefix(limit))
        return Page(items: items, nextCursor: cursor(items[items.count - 1]).text)
    }
}
