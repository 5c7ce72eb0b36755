import Foundation
import SandboxCore
import SandboxManager

/// Who decides whether a claimed run may start now: the tenant's quotas. A queued run's attempt
/// is a sandbox like a live one, so it counts against `max_sandboxes` and the memory quota while
/// it runs; a run that does not fit now goes back to the queue (not counted as an attempt).
public protocol RunAdmission: Sendable {
    /// Holds the tenant's quota for one sandbox of `profile`; `quota_exceeded` when it is full.
    func holdQuota(tenantId: String, profile: Profile) async throws -> UUID
    func releaseQuota(_ hold: UUID) async
}

extension SandboxManager: RunAdmission {}
