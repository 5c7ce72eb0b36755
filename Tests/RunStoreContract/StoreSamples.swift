import Foundation
import SandboxCore
import SandboxStore

/// A sandbox record with every field set, for every engine's tests.
public func sampleSandbox(
    id: String, tenant: String = "tnt_a", state: SandboxState = .running, createdAt: Date = Date(),
    metadata: [String: String] = [:]
) -> SandboxRecord {
    var profile = Profile.bounty
    profile.ttl = .seconds(600)
    profile.env = ["A": "1"]
    return SandboxRecord(
        id: id, tenantId: tenant, state: state, profile: profile, createdAt: createdAt, updatedAt: createdAt,
        expiresAt: createdAt.addingTimeInterval(600), idleTimeoutSeconds: 120.5, lastActivityAt: createdAt,
        metadata: metadata, reason: state.isFinal ? "ttl" : nil, node: "host-1:/var/lib/sandboxer", execCount: 3, cpuMs: 12.25)
}
