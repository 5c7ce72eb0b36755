import Foundation
import SandboxCore
import SandboxStore

extension SandboxManager {
    /// Adds an envd access token (its hash) to a live sandbox of the tenant, as E2B's connect call
    /// hands one out: the store keeps only hashes, so a token already given cannot be shown again.
    /// A sandbox made through /v1 gets its first one here (not `secure`: its id is enough, as for
    /// every non-secure E2B sandbox). Returns the record as stored.
    public func addEnvdToken(tenantId: String, id: String, hash: String) async throws -> SandboxRecord {
        var l = try liveSandbox(tenantId, id)
        var access = l.record.envdAccess ?? EnvdAccess(secure: false)
        access.add(hash: hash)
        l.record.envdAccess = access
        l.record.updatedAt = Date()
        live[id] = l
        try await persistNow(l.record)
        return l.record
    }
}
