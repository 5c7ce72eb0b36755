import Foundation
import OneShot
import SandboxCore

extension SandboxManager {
    /// The secrets a profile names that the tenant may use (its own, else shared), with fresh
    /// placeholders; none held → `invalid_request` naming it.
    func resolveSecrets(_ profile: Profile, tenantId: String) async throws(SandboxError) -> [EgressSecret] {
        guard !profile.secrets.isEmpty else { return [] }
        guard let resolver = configuration.secrets else {
            throw SandboxError(.invalidRequest, "profile '\(profile.name)' asks for secrets (\(profile.secrets.joined(separator: ", "))), but this server holds none; set them with `sandboxer secret set NAME --hosts HOST`")
        }
        return try await resolver.resolve(names: profile.secrets, tenantId: tenantId, placeholders: [:])
    }

    /// Runs a sandbox's setup command under its `setup` phase policy, then switches it to `run`.
    /// A failed setup destroys the sandbox and is a `setup_failed` error with the command's output.
    func runSetup(tenantId: String, id: String, _ setup: ExecRequest, profile: Profile, actor: String) async throws {
        let result = try await exec(tenantId: tenantId, id: id, setup, actor: actor, output: nil)
        guard result.outcome == .ok else {
            let tail = String((result.stderr.isEmpty ? result.stdout : result.stderr).suffix(2000))
            _ = try? await destroy(tenantId: tenantId, id: id, actor: actor)
            throw SandboxError(.setupCommandFailed, "the setup command failed (\(result.outcome.rawValue)\(result.exitCode.map { ", exit \($0)" } ?? "")); the sandbox was removed. Its output: \(tail)")
        }
        let (handle, backend) = try await target(tenantId, id)
        if let failure = await SetupProcesses.end(handle, backend: backend, profile: profile) {
            _ = try? await destroy(tenantId: tenantId, id: id, actor: actor)
            throw SandboxError(.setupCommandFailed, "\(failure); the sandbox was removed")
        }
        if !profile.phases.keepSetupProcesses {
            trail.record(AuditEvent(sandboxId: id, kind: .setupProcessesEnded, actor: "server", detail: ["reason": "the setup phase ended"]))
        }
        await configuration.egress?.enterRunPhase(sandboxId: id, profile: profile)
    }

    /// A live sandbox's network policy now.
    public func network(tenantId: String, id: String) async throws -> NetworkPolicy {
        let record = try await get(tenantId: tenantId, id: id)
        if let egress = configuration.egress, let current = await egress.policy(sandboxId: id) { return current }
        return record.profile.network
    }

    /// Replaces a live sandbox's network policy (`PATCH /v1/sandboxes/{id}/network`); connections
    /// the new policy does not allow are closed. Only sandboxes created with a network (any phase
    /// not `deny`) have a proxy to change.
    public func setNetwork(tenantId: String, id: String, _ network: NetworkPolicy, actor: String) async throws -> NetworkPolicy {
        let record = try await get(tenantId: tenantId, id: id)
        guard record.state == .running else {
            throw SandboxError(.invalidState, "sandbox \(id) is \(record.state.rawValue); only a live sandbox's network can change")
        }
        _ = try EgressPolicy(network: network, profile: record.profile.name)
        guard let egress = configuration.egress, await egress.policy(sandboxId: id) != nil else {
            throw SandboxError(.invalidState, "sandbox \(id) was created without a network (its profile's network mode is deny); create it with network mode allowlist to change its allowlist later")
        }
        guard await egress.update(sandboxId: id, network: network, phase: nil) else {
            throw SandboxError(.invalidRequest, "the network policy was refused (network mode open needs `serve --allow-open-network`)")
        }
        return network
    }
}
