import Foundation
import RunStoreContract
import SandboxCore
import SandboxStore
import SandboxTestSupport
import Testing
@testable import SandboxStorePostgres

/// The run-queue contract on PostgreSQL: every case on a fresh database; the "second node" is a
/// second store on the same database (its own pool and LISTEN connection).
@Suite("Run queue on PostgreSQL", .postgres)
struct RunQueuePostgresTests {
    @Test(arguments: RunStoreContract.names)
    func contract(_ name: String) async throws {
        try await withPostgresNodes { store, second in
            try await RunStoreContract.cases[name]!(RunStoreFixture(store: store, second: second))
        }
    }

    @Test("a run survives closing the store; another node reads it")
    func durable() async throws {
        try await withPostgres { store, db in
            let run = RunStoreContract.newRun()
            _ = try await store.submitRun(run, maxQueued: 10)
            await store.close()
            let again = try await db.open()
            #expect(try await again.run(id: run.id) == run)
            await again.close()
        }
    }
}
