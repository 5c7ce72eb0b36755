import Foundation
import RunStoreContract
import SandboxCore
import SandboxStore
import Testing
@testable import SandboxStorePostgres

/// The bounty store contract on PostgreSQL: every case on a fresh database; the second instance
/// is another node on the same database.
@Suite("Bounties and submissions on PostgreSQL", .postgres)
struct BountyPostgresTests {
    @Test(arguments: BountyStoreContract.names)
    func contract(_ name: String) async throws {
        try await withPostgresNodes { store, second in
            try await BountyStoreContract.cases[name]!(BountyStoreFixture(store: store, second: second))
        }
    }
}
