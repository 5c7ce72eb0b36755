import Foundation
import RunStoreContract
import SandboxCore
import SandboxStore
import Testing

/// The metering contract on SQLite: every case on a fresh store; the second instance is a
/// second store on the same file.
@Suite("Usage (metering) on SQLite")
struct UsageStoreTests {
    @Test(arguments: UsageContract.names)
    func contract(_ name: String) async throws {
        try await withStore { store, temp in
            let dir = temp.dir
            try await UsageContract.cases[name]!(UsageStoreFixture(store: store, second: { try SQLiteStore(directory: dir) }))
        }
    }
}
