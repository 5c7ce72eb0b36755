import Foundation
import SandboxCore
import SandboxStore

/// The operator's view of tenants: their quotas in force (the server's defaults with each tenant's
/// overrides) and changing them (`GET /v1/tenants`, `PUT /v1/tenants/{name}/quota`).
extension SandboxManager {
    /// A tenant with the quotas in force for it.
    public struct TenantQuotas: Sendable, Equatable {
        public var tenant: Tenant
        public var quota: TenantQuota
    }

    /// Every tenant, by name, with its quotas in force.
    public func tenantQuotas() async throws -> [TenantQuotas] {
        try await store.tenants().map { TenantQuotas(tenant: $0, quota: inForce($0.overrides)) }
    }

    /// One tenant (by name) with its quotas in force; `not_found` when there is none.
    public func tenantQuotas(name: String) async throws -> TenantQuotas {
        guard let t = try await store.tenant(name: name) else {
            throw SandboxError(.notFound, "no tenant '\(name)'; GET /v1/tenants lists them")
        }
        return TenantQuotas(tenant: t, quota: inForce(t.overrides))
    }

    /// Changes a tenant's quota overrides; this server applies them at once (others within seconds).
    public func changeQuota(name: String, _ changes: QuotaChanges, actor: String) async throws -> TenantQuotas {
        let t = try await store.changeQuota(tenantName: name, changes)
        tenants[t.id] = (t, Date())
        recordTenantEvent(.quotaSet(t, actor: actor))
        return TenantQuotas(tenant: t, quota: inForce(t.overrides))
    }

    /// The quotas in force for a tenant: the server's defaults with the tenant's overrides.
    public func quota(_ tenantId: String) async throws -> TenantQuota {
        inForce(try await tenant(tenantId).overrides)
    }

    /// The server's defaults with `overrides`, memory never above the operator's ceiling (derived
    /// from the host's RAM: a stored quota cannot promise more than the host has).
    func inForce(_ overrides: QuotaOverrides) -> TenantQuota {
        configuration.defaultQuota.inForce(overrides, memoryCeiling: configuration.ceilings.tenantMemoryBytes)
    }

    /// Holds one sandbox of `profile` against the tenant's quotas (`max_sandboxes`, memory) as a
    /// live sandbox would, until ``releaseQuota(_:)``: a queued run's attempt counts like a live
    /// sandbox. `quota_exceeded` (with `retryAfterSeconds`) when the tenant is at its quota.
    public func holdQuota(tenantId: String, profile: Profile) async throws -> UUID {
        try await checkQuota(tenantId: tenantId, adding: profile)
    }

    /// Gives back a hold of ``holdQuota(tenantId:profile:)``.
    public func releaseQuota(_ hold: UUID) {
        quotaHolds[hold] = nil
    }
}
