import Foundation
import Synchronization
import Testing
import Logging
import PostgresNIO
import SandboxCore
import SandboxStore
@testable import SandboxStorePostgres

/// The private PostgreSQL the tests run against (`make test` starts one with
/// `scripts/pg-test-server.sh` and exports its URL); the suites (`.postgres`) skip when it is unset, and fail under `make test`.
enum TestPostgres {
    static let url: String? = ProcessInfo.processInfo.environment["SANDBOXER_TEST_PG_URL"].flatMap { $0.isEmpty ? nil : $0 }
    static let skipReason: Comment = "SANDBOXER_TEST_PG_URL is unset: start a server with scripts/pg-test-server.sh start DIR and export its URL (make test does)"
}

/// A fresh database for one test (`CREATE DATABASE t_<random>`), so tests run in parallel;
/// `drop()` removes it (closing whatever still uses it).
struct TestDatabase: Sendable {
    let name: String
    /// The store URL of this database.
    let url: String

    static func create() async throws -> TestDatabase {
        let admin = try #require(TestPostgres.url, TestPostgres.skipReason)
        let name = "t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(16)
        try await execute(admin, "CREATE DATABASE \(name)")
        var parts = try #require(URLComponents(string: admin))
        parts.path = "/\(name)"
        return TestDatabase(name: String(name), url: try #require(parts.string))
    }

    func drop() async {
        guard let admin = TestPostgres.url else { return }
        try? await Self.execute(admin, "DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
    }

    /// Opens a store (a node) on this database.
    func open() async throws -> PostgresStore {
        try await PostgresStore.open(url: url, logger: Logger(label: "test.store"))
    }

    static func execute(_ url: String, _ sql: String) async throws {
        let config = try PostgresURL(url).connectionConfiguration()
        let connection = try await PostgresConnection.connect(configuration: config, id: 99, logger: Logger(label: "test.admin"))
        do { try await connection.query(PostgresQuery(unsafeSQL: sql), logger: Logger(label: "test.admin")) } catch {
            try? await connection.close()
            throw error
        }
        try await connection.close()
    }
}

/// Runs `body` with a store on a fresh database; closes the store and drops the database after.
func withPostgres<T>(_ body: (PostgresStore, TestDatabase) async throws -> T) async throws -> T {
    let db = try await TestDatabase.create()
    let store: PostgresStore
    do { store = try await db.open() } catch {
        await db.drop()
        throw error
    }
    do {
        let value = try await body(store, db)
        await store.close()
        await db.drop()
        return value
    } catch {
        await store.close()
        await db.drop()
        throw error
    }
}

/// Runs `body` with a store on a fresh database and an opener of more nodes on it (the shared
/// contracts' second instance); the nodes are closed and the database dropped after.
func withPostgresNodes(_ body: (PostgresStore, @escaping @Sendable () async throws -> PostgresStore) async throws -> Void) async throws {
    let others = OpenedStores()
    try await withPostgres { store, db in
        do {
            try await body(store, {
                let node = try await db.open()
                others.add(node)
                return node
            })
        } catch {
            await others.closeAll()
            throw error
        }
        await others.closeAll()
    }
}

/// Stores opened during a test (second nodes), closed at its end.
final class OpenedStores: Sendable {
    private let stores = Mutex<[PostgresStore]>([])
    func add(_ store: PostgresStore) { stores.withLock { $0.append(store) } }
    func closeAll() async {
        for store in stores.withLock({ $0 }) { await store.close() }
    }
}
