import Foundation
import RunStoreContract
import SandboxCore
import SandboxStore
import Testing

/// The audit trail contract on SQLite: every case on a fresh store; the second instance is a
/// second store on the same file.
@Suite("Audit trail on SQLite")
struct EventTrailTests {
    @Test(arguments: EventTrailContract.names)
    func contract(_ name: String) async throws {
        try await withStore { store, temp in
            let dir = temp.dir
            try await EventTrailContract.cases[name]!(EventStoreFixture(store: store, second: { try SQLiteStore(directory: dir) }))
        }
    }

    @Test(arguments: TenantTrailContract.names)
    func tenantContract(_ name: String) async throws {
        try await withStore { store, temp in
            let dir = temp.dir
            try await TenantTrailContract.cases[name]!(EventStoreFixture(store: store, second: { try SQLiteStore(directory: dir) }))
        }
    }

    @Test("a trail survives closing and reopening the store")
    func durable() async throws {
        try await withStore { store, temp in
            try await store.appendEvents([AuditEvent(sandboxId: "sbx-1", kind: .sandboxCreate, actor: "key_a")])
            try store.close()
            let again = try temp.open()
            defer { try? again.close() }
            #expect(try await again.events(sandboxId: "sbx-1", after: 0, limit: 10).map(\.kind) == [.sandboxCreate])
        }
    }
}
