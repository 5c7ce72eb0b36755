import Foundation
import PostgresNIO
import SandboxCore
import SandboxStore

extension PostgresStore: SecretStore {
    public func putSecret(_ record: SecretRecord) async throws(SandboxError) {
        let hosts = try JSONColumn.encode(record.hosts)
        let sealed = Data(record.sealed)
        let what = "storing secret \(record.name)"
        let query: PostgresQuery
        do {
            query = try """
                INSERT INTO secrets (scope, name, hosts, header, sealed, created_at, updated_at)
                VALUES (\(record.scope.storageKey), \(record.name), \(hosts), \(record.header), \(sealed), \(record.createdAt.column),
                        \(record.updatedAt.column))
                ON CONFLICT (scope, name) DO UPDATE SET hosts = EXCLUDED.hosts, header = EXCLUDED.header,
                    sealed = EXCLUDED.sealed, updated_at = EXCLUDED.updated_at
                """
        } catch {
            throw PostgresError.map(error, doing: what, url: url.display)
        }
        try await rows(what, query)
    }

    public func secret(name: String, scope: SecretScope) async throws(SandboxError) -> SecretRecord? {
        try await fetch("reading secret \(name)", "SELECT * FROM secrets WHERE scope = \(scope.storageKey) AND name = \(name)",
                        Self.secret(from:)).first
    }

    public func secrets(scope: SecretScope?) async throws(SandboxError) -> [SecretRecord] {
        if let scope {
            return try await fetch("listing secrets", "SELECT * FROM secrets WHERE scope = \(scope.storageKey) ORDER BY name COLLATE \"C\"",
                                   Self.secret(from:))
        }
        return try await fetch("listing secrets", "SELECT * FROM secrets ORDER BY name COLLATE \"C\", scope COLLATE \"C\"", Self.secret(from:))
    }

    public func deleteSecret(name: String, scope: SecretScope) async throws(SandboxError) -> Bool {
        !(try await rows("removing secret \(name)",
                         "DELETE FROM secrets WHERE scope = \(scope.storageKey) AND name = \(name) RETURNING name")).isEmpty
    }

    static func secret(from row: PostgresRandomAccessRow) throws -> SecretRecord {
        SecretRecord(
            scope: SecretScope(storageKey: try row.get("scope")), name: try row.get("name"),
            hosts: try JSONColumn.decode([String].self, text: try row.get("hosts"), what: "a secret's hosts"),
            header: try row.get("header", as: String?.self), sealed: [UInt8](try row.get("sealed", as: Data.self)),
            createdAt: try row.date("created_at"), updatedAt: try row.date("updated_at"))
    }
}
