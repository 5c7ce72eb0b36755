import Foundation
import RunStoreContract
import SandboxCore
import SandboxStore
import Testing

/// The run-queue contract on SQLite: every case on a fresh store; the "second node" is a second
/// store on the same file.
@Suite("Run queue on SQLite")
struct RunQueueTests {
    @Test(arguments: RunStoreContract.names)
    func contract(_ name: String) async throws {
        try await withStore { store, temp in
            let dir = temp.dir
            try await RunStoreContract.cases[name]!(RunStoreFixture(store: store, second: { try SQLiteStore(directory: dir) }))
        }
    }

    @Test("a run survives closing and reopening the store")
    func durable() async throws {
        try await withStore { store, temp in
            let run = RunStoreContract.newRun()
            _ = try await store.submitRun(run, maxQueued: 10)
            try store.close()
            let again = try temp.open()
            defer { try? again.close() }
            #expect(try await again.run(id: run.id) == run)
        }
    }
}
