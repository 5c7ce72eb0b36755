import Foundation
import RunStoreContract
import SandboxCore
import SandboxStore
import Testing

/// The bounty store contract on SQLite: every case on a fresh store; the second instance is a
/// second store on the same file.
@Suite("Bounties and submissions on SQLite")
struct BountyStoreTests {
    @Test(arguments: BountyStoreContract.names)
    func contract(_ name: String) async throws {
        try await withStore { store, temp in
            let dir = temp.dir
            try await BountyStoreContract.cases[name]!(BountyStoreFixture(store: store, second: { try SQLiteStore(directory: dir) }))
        }
    }
}
