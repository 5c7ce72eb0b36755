import Foundation
import SandboxCore

/// Queued-run attempts from the warm pool: a ready sandbox of exactly the run's profile runs the
/// attempt's one exec and is destroyed after, so the attempt skips the sandbox's start-up with
/// the same isolation a one-shot sandbox has (its own cgroup, namespaces, workspace; nothing
/// reused across attempts).
extension SandboxManager {
    /// A ready pooled sandbox for one attempt of `profile`, or nil: the profile must be a pooled
    /// profile exactly as configured (an inline or changed one is not), in the container isolations,
    /// with no network and no secrets (pooled sandboxes have no proxy and no placeholders).
    public func takePooled(for profile: Profile) -> SandboxHandle? {
        guard profile.isolation == .container || profile.isolation == .gvisor, !profile.needsEgress, profile.secrets.isEmpty,
              configuration.warmPool[profile.name] != nil,
              let configured = try? configuration.profiles.load(profile.name), configured == profile
        else { return nil }
        return takeFromPool(profile.name)
    }

    /// Runs `request` in the pooled sandbox `handle` (from ``takePooled(for:)``) and destroys it,
    /// also when the exec fails or the caller is cancelled (the exec is killed with the sandbox).
    public nonisolated func runPooled(_ handle: SandboxHandle, _ request: ExecRequest, output: OutputHandler?) async throws -> ExecResult {
        guard let backend = backends[handle.spec.profile.isolation] else {
            throw SandboxError(.hostUnsupported, "no isolation '\(handle.spec.profile.isolation.rawValue)' on this server")
        }
        // Destroyed whatever happens, in a task of its own: a cancelled caller must not skip it.
        func destroy() async {
            await Task { await self.destroyOrCollect(handle, backend) }.value
        }
        do {
            var result = try await backend.exec(handle, request, output: output)
            result.sandboxId = handle.id
            await destroy()
            return result
        } catch {
            await destroy()
            throw error
        }
    }
}
