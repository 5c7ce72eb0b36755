import Foundation
import PostgresNIO
import SandboxCore
import SandboxStore

/// The one query behind both listings (sandboxes oldest first, runs newest first): a tenant's
/// rows filtered by state, creation time and JSON key/value pairs, after a ``PageCursor``,
/// `limit + 1` rows so the caller knows whether a next page follows.
struct Listing {
    var table: String
    var columns: String
    var tenantId: String
    var states: [String]?
    var since: Date?
    /// The JSONB column `pairs` must match (every pair).
    var pairsColumn: String
    var pairs: [String: String]
    var cursor: String?
    var newestFirst: Bool
    var limit: Int

    func query() throws(SandboxError) -> PostgresQuery {
        var binds = PostgresBindings()
        func bind(_ value: some PostgresDynamicTypeEncodable) -> String {
            binds.append(value)
            return "$\(binds.count)"
        }
        var sql = "SELECT \(columns) FROM \(table) WHERE tenant_id = \(bind(tenantId))"
        if let states, !states.isEmpty { sql += " AND state = ANY(\(bind(states)))" }
        if let since { sql += " AND created_at >= \(bind(since.column))" }
        if let cursor {
            let after = try PageCursor(text: cursor)
            let (t, id) = (bind(after.createdAt), bind(after.id))
            let op = newestFirst ? "<" : ">"
            sql += " AND (created_at \(op) \(t) OR (created_at = \(t) AND id \(op) \(id)))"
        }
        for (key, value) in pairs.sorted(by: { $0.key < $1.key }) {
            sql += " AND \(pairsColumn) ->> \(bind(key)) = \(bind(value))"
        }
        let order = newestFirst ? "created_at DESC, id DESC" : "created_at, id"
        sql += " ORDER BY \(order) LIMIT \(bind(limit + 1))"
        return PostgresQuery(unsafeSQL: sql, binds: binds)
    }
}
