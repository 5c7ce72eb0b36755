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

/// Where an attempt may find a sandbox that is already up: the warm pool of the server's live
/// sandboxes (``SandboxManager``). A pooled sandbox runs the attempt's one exec and is destroyed
/// once the attempt's end is recorded.
public protocol RunPool: Sendable {
    /// A ready sandbox for one attempt of `profile`, or nil (the attempt gets a one-shot sandbox).
    func takePooled(for profile: Profile) async -> SandboxHandle?
    /// Runs `request` in `handle`; destroys it when the exec fails or is cancelled (which kills it).
    func runPooled(_ handle: SandboxHandle, _ request: ExecRequest, output: OutputHandler?) async throws -> ExecResult
    /// Destroys `handle` after its exec ended and the attempt's end is on record.
    func destroyPooled(_ handle: SandboxHandle) async
}

extension SandboxManager: RunPool {}
