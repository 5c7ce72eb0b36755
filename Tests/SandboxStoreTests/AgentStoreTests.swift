import Foundation
import RunStoreContract
import SandboxCore
import SandboxStore
import Testing

/// The agent registry contract on SQLite: every case on a fresh store; the second instance is a
/// second store on the same file.
@Suite("Agent registry on SQLite")
struct AgentStoreTests {
    @Test(arguments: AgentStoreContract.names)
    func contract(_ name: String) async throws {
        try await withStore { store, temp in
            let dir = temp.dir
            try await AgentStoreContract.cases[name]!(AgentStoreFixture(store: store, second: { try SQLiteStore(directory: dir) }))
        }
    }
}
