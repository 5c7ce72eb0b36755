import Foundation
import GRDB
import SandboxCore

extension SQLiteStore: SecretStore {
    public func putSecret(_ record: SecretRecord) async throws(SandboxError) {
        let hosts = try JSONColumn.encode(record.hosts)
        try await write("storing secret \(record.name)") { db in
            try db.execute(
                sql: """
                    INSERT INTO secrets (scope, name, hosts, header, sealed, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT(scope, name) DO UPDATE SET hosts = excluded.hosts, header = excluded.header,
                        sealed = excluded.sealed, updated_at = excluded.updated_at
                    """,
                arguments: [record.scope.storageKey, record.name, hosts, record.header, Data(record.sealed),
                            record.createdAt.column, record.updatedAt.column])
        }
    }

    public func secret(name: String, scope: SecretScope) async throws(SandboxError) -> SecretRecord? {
        try await read("reading secret \(name)") { db in
            try Row.fetchOne(db, sql: "SELECT * FROM secrets WHERE scope = ? AND name = ?", arguments: [scope.storageKey, name])
                .map(Self.secret(from:))
        }
    }

    public func secrets(scope: SecretScope?) async throws(SandboxError) -> [SecretRecord] {
        try await read("listing secrets") { db in
            if let scope {
                return try Row.fetchAll(db, sql: "SELECT * FROM secrets WHERE scope = ? ORDER BY name", arguments: [scope.storageKey])
                    .map(Self.secret(from:))
            }
            return try Row.fetchAll(db, sql: "SELECT * FROM secrets ORDER BY name, scope").map(Self.secret(from:))
        }
    }

    public func deleteSecret(name: String, scope: SecretScope) async throws(SandboxError) -> Bool {
        try await write("removing secret \(name)") { db in
            try db.execute(sql: "DELETE FROM secrets WHERE scope = ? AND name = ?", arguments: [scope.storageKey, name])
            return db.changesCount > 0
        }
    }

    static func secret(from row: Row) throws -> SecretRecord {
        let sealed: Data = try row.decode(forColumn: "sealed")
        return SecretRecord(
            scope: SecretScope(storageKey: try row.decode(forColumn: "scope")), name: try row.decode(forColumn: "name"), hosts: try JSONColumn.decode([String].self, row, "hosts"),
            header: try row.decode(forColumn: "header"), sealed: [UInt8](sealed),
            createdAt: try JSONColumn.date(row, "created_at"), updatedAt: try JSONColumn.date(row, "updated_at"))
    }
}
