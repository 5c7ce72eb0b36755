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

    /// Runs `request` in the pooled sandbox `handle` (from ``takePooled(for:)``). When the exec
    /// fails or the caller is cancelled the sandbox is destroyed here (which kills the exec); when
    /// it ends, the caller records the end first and then calls ``destroyPooled(_:)``.
    public nonisolated func runPooled(_ handle: SandboxHandle, _ request: ExecRequest, output: OutputHandler?) async throws -> ExecResult {
        guard let backend = backends[handle.spec.profile.isolation] else {
            await destroyPooled(handle)
            throw SandboxError(.hostUnsupported, "no isolation '\(handle.spec.profile.isolation.rawValue)' on this server")
        }
        do {
            var result = try await backend.exec(handle, request, output: output)
            result.sandboxId = handle.id
            // The image the pooled sandbox was made from (a queued run's replay record names it).
            if result.templateDigest == nil { result.templateDigest = try? await templateDigest(handle.spec.profile) }
            return result
        } catch {
            await destroyPooled(handle)
            throw error
        }
    }

    /// Destroys a pooled attempt's sandbox (its processes killed, host resources removed), in a
    /// task of its own that this call awaits: a cancelled caller does not skip it.
    public nonisolated func destroyPooled(_ handle: SandboxHandle) async {
        guard let backend = backends[handle.spec.profile.isolation] else {
            logger.error("a pooled sandbox's isolation has no backend; it is left to the start-up collection", metadata: ["id": "\(handle.id)"])
            return
        }
        await Task { await self.destroyOrCollect(handle, backend) }.value
    }
}
