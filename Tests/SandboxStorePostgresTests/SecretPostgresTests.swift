import Foundation
import RunStoreContract
import SandboxCore
import SandboxStore
import SandboxTestSupport
import Testing
@testable import SandboxStorePostgres

/// Secrets on PostgreSQL: the same contract as SQLite; the key file stays in the local data
/// directory, so a second node with a copy of it reveals what the first one set.
@Suite("PostgresStore: secrets", .postgres)
struct SecretPostgresTests {
    @Test("set, reveal, list without values, replace, remove; unknown names are refused naming them")
    func roundTrip() async throws {
        try await withPostgres { store, _ in
            try await withDataDirectory { dir in
                try await SecretStoreContract.vaultRoundTrip(store: store, dataDirectory: dir)
            }
        }
    }

    @Test("a tenant's secret is its own: another tenant neither gets it nor learns its name; own before shared")
    func tenantScopes() async throws {
        try await withPostgres { store, _ in
            try await withDataDirectory { dir in
                try await SecretStoreContract.tenantScopes(store: store, dataDirectory: dir)
            }
        }
    }

    @Test("a record whose hosts were edited in the database does not open")
    func editedHosts() async throws {
        try await withPostgres { store, _ in
            try await withDataDirectory { dir in
                try await SecretStoreContract.editedHostsRefused(store: store, dataDirectory: dir)
            }
        }
    }

    @Test("a second node with the same key file reveals the secret; the database holds no plaintext")
    func secondNode() async throws {
        try await withPostgres { store, db in
            try await withDataDirectory { dir in
                try await SecretVault.open(store: store, dataDirectory: dir).set("TOKEN", value: Array("plain-value-42".utf8), hosts: ["a.example.com"], header: nil)
                let node2 = try await db.open()
                let revealed = try await SecretVault.open(store: node2, dataDirectory: dir).reveal("TOKEN")
                await node2.close()
                #expect(revealed.value == Array("plain-value-42".utf8))
                let dump = try await store.fetch("dumping secrets", "SELECT row_to_json(s)::text AS j FROM secrets s") { try $0.get("j", as: String.self) }
                #expect(dump.count == 1 && !dump[0].contains("plain-value-42") && dump[0].contains("a.example.com"))
            }
        }
    }

    func withDataDirectory(_ body: (String) async throws -> Void) async throws {
        let dir = NSTemporaryDirectory() + "sandboxer-secrets-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try await body(dir)
    }
}
