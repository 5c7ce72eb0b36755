import Foundation
import RunStoreContract
import SandboxCore
import SandboxStore
import Testing
@testable import SandboxStorePostgres

/// The metering contract on PostgreSQL: every case on a fresh database; the second instance is
/// another node on the same database.
@Suite("Usage (metering) on PostgreSQL", .postgres)
struct UsagePostgresTests {
    @Test(arguments: UsageContract.names)
    func contract(_ name: String) async throws {
        try await withPostgresNodes { store, second in
            try await UsageContract.cases[name]!(UsageStoreFixture(store: store, second: second))
        }
    }
}
