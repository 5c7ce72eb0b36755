import Foundation
import RunStoreContract
import SandboxCore
import SandboxStore
import SandboxTestSupport
import Testing
@testable import SandboxStorePostgres

/// The audit trail contract on PostgreSQL: every case on a fresh database; the second instance
/// is another node on the same database.
@Suite("Audit trail on PostgreSQL", .postgres)
struct EventTrailPostgresTests {
    @Test(arguments: EventTrailContract.names)
    func contract(_ name: String) async throws {
        try await withPostgresNodes { store, second in
            try await EventTrailContract.cases[name]!(EventStoreFixture(store: store, second: second))
        }
    }

    @Test(arguments: TenantTrailContract.names)
    func tenantContract(_ name: String) async throws {
        try await withPostgresNodes { store, second in
            try await TenantTrailContract.cases[name]!(EventStoreFixture(store: store, second: second))
        }
    }
}
