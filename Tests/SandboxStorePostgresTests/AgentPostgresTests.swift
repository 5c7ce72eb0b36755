import Foundation
import RunStoreContract
import SandboxCore
import SandboxStore
import Testing
@testable import SandboxStorePostgres

/// The agent registry contract on PostgreSQL: every case on a fresh database; the second instance
/// is another node on the same database.
@Suite("Agent registry on PostgreSQL", .postgres)
struct AgentPostgresTests {
    @Test(arguments: AgentStoreContract.names)
    func contract(_ name: String) async throws {
        try await withPostgresNodes { store, second in
            try await AgentStoreContract.cases[name]!(AgentStoreFixture(store: store, second: second))
        }
    }
}
