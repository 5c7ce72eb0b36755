import Foundation
import PostgresNIO
import SandboxCore
import SandboxStore

extension PostgresStore {
    public func insertSandbox(_ record: SandboxRecord) async throws {
        let json = try JSONColumn.encode(record)
        let metadata = try JSONColumn.encode(record.metadata)
        let inserted = try await rows(
            "storing sandbox \(record.id)",
            """
            INSERT INTO sandboxes (id, tenant_id, state, created_at, metadata, record)
            VALUES (\(record.id), \(record.tenantId), \(record.state.rawValue), \(record.createdAt.column), \(metadata)::jsonb, \(json))
            ON CONFLICT (id) DO NOTHING RETURNING id
            """)
        if inserted.isEmpty { throw SandboxError(.invalidState, "sandbox \(record.id) is already stored; pick a new id") }
    }

    public func updateSandbox(_ record: SandboxRecord) async throws {
        let json = try JSONColumn.encode(record)
        let metadata = try JSONColumn.encode(record.metadata)
        let changed = try await rows(
            "updating sandbox \(record.id)",
            """
            UPDATE sandboxes SET tenant_id = \(record.tenantId), state = \(record.state.rawValue), created_at = \(record.createdAt.column),
                metadata = \(metadata)::jsonb, record = \(json)
            WHERE id = \(record.id) RETURNING id
            """)
        guard !changed.isEmpty else { throw SandboxError(.notFound, "sandbox \(record.id) is not stored; insert it first") }
    }

    public func sandbox(id: String) async throws -> SandboxRecord? {
        try await fetch("reading sandbox \(id)", "SELECT record FROM sandboxes WHERE id = \(id)", Self.sandbox(from:)).first
    }

    /// A tenant's sandboxes oldest first (by creation time, then id), as ``SQLiteStore`` pages them
    /// (the same cursors). `states` nil or empty: any state.
    public func sandboxes(_ query: SandboxQuery) async throws -> Page<SandboxRecord> {
        let limit = min(max(query.limit, 1), 1000)
        let sql = try Listing(
            table: "sandboxes", columns: "id, record", tenantId: query.tenantId, states: query.states?.map(\.rawValue), since: nil,
            pairsColumn: "metadata", pairs: query.metadata, cursor: query.cursor, newestFirst: false, limit: limit
        ).query()
        let logger = self.logger
        let records = try await rows("listing sandboxes of tenant \(query.tenantId)", sql)
            .compactMap { Self.decodable($0, logger) }
        return Page.of(records, limit: limit) { PageCursor(createdAt: $0.createdAt.column, id: $0.id) }
    }

    public func activeSandboxes() async throws -> [SandboxRecord] {
        let states = SandboxState.allCases.filter { !$0.isFinal }.map(\.rawValue)
        let logger = self.logger
        return try await rows("listing active sandboxes", "SELECT id, record FROM sandboxes WHERE state = ANY(\(states)) ORDER BY created_at, id")
            .compactMap { Self.decodable($0, logger) }
    }

    /// A row as a record, or nil (logged) when it cannot be read back — one bad row must not stop
    /// a listing or the server's start-up.
    static func decodable(_ row: PostgresRandomAccessRow, _ logger: Logger) -> SandboxRecord? {
        do { return try sandbox(from: row) } catch {
            logger.error("a sandbox record cannot be read; skipped", metadata: ["id": "\((try? row.get("id", as: String.self)) ?? "?")", "error": "\(error)"])
            return nil
        }
    }

    static func sandbox(from row: PostgresRandomAccessRow) throws -> SandboxRecord {
        try JSONColumn.decode(SandboxRecord.self, text: try row.get("record"), what: "a sandbox record")
    }
}
