import Foundation
import SandboxCore
import SandboxStore

/// The tenant-trail entries of what the operator changes from the host (`key`, `secret`): the
/// CLI writes the store directly, so it appends the entry itself, right after the change, with
/// the actor `cli`. A shared secret belongs to no tenant: its entries go to the operator's trail
/// (tenant id `*`, which no API key can read).
enum CLIAudit {
    static let actor = "cli"
    /// The trail of changes that belong to no tenant.
    static let operatorTrail = "*"

    /// Appends `event`; a store that took the change but not its entry is an error saying so.
    static func record(_ store: any SandboxStore, _ event: TenantEvent) async throws {
        do {
            try await store.appendTenantEvents([event], batch: UUID().uuidString)
        } catch let error as SandboxError {
            throw SandboxError(error.code, "the change was made, but its audit entry (\(event.kind.rawValue)) could not be stored: \(error.message)")
        }
    }

    /// The trail a secret's entries go to.
    static func trail(of scope: SecretScope) -> String {
        switch scope {
        case .shared: return operatorTrail
        case .tenant(let id): return id
        }
    }
}
