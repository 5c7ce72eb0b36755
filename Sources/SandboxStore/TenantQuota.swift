import Foundation
import SandboxCore

/// Per-tenant limits the server enforces (429 with `Retry-After` when one is used up): the
/// server's defaults (`serve --max-sandboxes …` or the config file) with the tenant's own
/// ``QuotaOverrides`` applied.
public struct TenantQuota: Sendable, Equatable, Codable {
    /// Live sandboxes (and sandboxes being created) at once.
    public var maxSandboxes: Int
    public var execsPerMinute: Int
    /// Sum of the memory limits of the tenant's live sandboxes.
    public var maxMemoryBytes: Int64
    /// Queued runs waiting at once (more are refused with 429).
    public var maxQueued: Int

    public init(maxSandboxes: Int = 100, execsPerMinute: Int = 6000, maxMemoryBytes: Int64 = 64 << 30, maxQueued: Int = 10_000) {
        self.maxSandboxes = maxSandboxes
        self.execsPerMinute = execsPerMinute
        self.maxMemoryBytes = maxMemoryBytes
        self.maxQueued = maxQueued
    }

    /// These defaults with the tenant's overrides in their place.
    public func applying(_ overrides: QuotaOverrides) -> TenantQuota {
        TenantQuota(maxSandboxes: overrides.maxSandboxes ?? maxSandboxes,
                    execsPerMinute: overrides.execsPerMinute ?? execsPerMinute,
                    maxMemoryBytes: overrides.maxMemoryBytes ?? maxMemoryBytes,
                    maxQueued: overrides.maxQueued ?? maxQueued)
    }

    /// The quotas in force for a tenant with `overrides` on a server whose defaults are these and
    /// whose tenant_memory ceiling is `memoryCeiling`: memory never above the ceiling (a stored quota
    /// cannot promise more than the host has). The server and `sandboxer tenant` both show this.
    public func inForce(_ overrides: QuotaOverrides, memoryCeiling: Int64) -> TenantQuota {
        var q = applying(overrides)
        q.maxMemoryBytes = min(q.maxMemoryBytes, memoryCeiling)
        return q
    }

    enum CodingKeys: String, CodingKey {
        case maxSandboxes = "max_sandboxes", execsPerMinute = "execs_per_minute", maxMemoryBytes = "max_memory_bytes"
        case maxQueued = "max_queued"
    }
}

/// The quotas an operator set for one tenant (`sandboxer tenant quota`, `PUT /v1/tenants/{name}/quota`);
/// a missing field means the server's default. Stored as the tenant's `quota` JSON.
public struct QuotaOverrides: Sendable, Equatable, Codable {
    public var maxSandboxes: Int?
    public var execsPerMinute: Int?
    public var maxMemoryBytes: Int64?
    public var maxQueued: Int?

    public init(maxSandboxes: Int? = nil, execsPerMinute: Int? = nil, maxMemoryBytes: Int64? = nil, maxQueued: Int? = nil) {
        self.maxSandboxes = maxSandboxes
        self.execsPerMinute = execsPerMinute
        self.maxMemoryBytes = maxMemoryBytes
        self.maxQueued = maxQueued
    }

    /// These overrides with `changes` made.
    public func applying(_ changes: QuotaChanges) -> QuotaOverrides {
        QuotaOverrides(maxSandboxes: changes.maxSandboxes.applied(to: maxSandboxes),
                       execsPerMinute: changes.execsPerMinute.applied(to: execsPerMinute),
                       maxMemoryBytes: changes.maxMemoryBytes.applied(to: maxMemoryBytes),
                       maxQueued: changes.maxQueued.applied(to: maxQueued))
    }

    /// Refuses values no quota can have (a count below 0, memory below 1 MiB), naming the field.
    public func validate() throws(SandboxError) {
        for (name, value) in [("max_sandboxes", maxSandboxes), ("execs_per_minute", execsPerMinute), ("max_queued", maxQueued)] {
            if let value, value < 0 || value > 100_000_000 {
                throw SandboxError(.invalidRequest, "\(name) \(value) is out of range; use 0 (none allowed) to 100000000")
            }
        }
        if let m = maxMemoryBytes, m < 1 << 20 {
            throw SandboxError(.invalidRequest, "max_memory_bytes \(m) is below 1 MiB; use a size such as 512M or 16G")
        }
    }

    /// The same names as ``TenantQuota``'s.
    typealias CodingKeys = TenantQuota.CodingKeys
}

/// What an operator changes of one tenant's quotas: each field is kept, set, or cleared (back to
/// the server's default).
public struct QuotaChanges: Sendable, Equatable {
    /// One field's change.
    public enum Change<Value: Sendable & Equatable>: Sendable, Equatable {
        case keep, set(Value), clear
        func applied(to value: Value?) -> Value? {
            switch self {
            case .keep: value
            case .set(let v): v
            case .clear: nil
            }
        }
    }
    public var maxSandboxes: Change<Int> = .keep
    public var execsPerMinute: Change<Int> = .keep
    public var maxMemoryBytes: Change<Int64> = .keep
    public var maxQueued: Change<Int> = .keep
    public init() {}
}

extension SandboxStore {
    /// Makes `changes` to the quotas of the tenant named `name` and returns the tenant as stored
    /// (`sandboxer tenant quota`, `PUT /v1/tenants/{name}/quota`). An unknown tenant is `not_found`.
    public func changeQuota(tenantName name: String, _ changes: QuotaChanges) async throws -> Tenant {
        guard var tenant = try await tenant(name: name) else {
            throw SandboxError(.notFound, "no tenant '\(name)'; `sandboxer tenant ls` lists them, and `sandboxer key create --tenant \(name)` creates one")
        }
        let overrides = tenant.overrides.applying(changes)
        try overrides.validate()
        try await setQuota(tenantId: tenant.id, overrides)
        tenant.overrides = overrides
        return tenant
    }
}

extension TenantEvent {
    /// The entry a quota change leaves in the changed tenant's trail: the quotas it now has of its
    /// own (the rest are the server's defaults).
    public static func quotaSet(_ tenant: Tenant, actor: String) -> TenantEvent {
        var detail: [String: EventValue] = [:]
        let o = tenant.overrides
        for (name, value) in [("max_sandboxes", o.maxSandboxes.map(Int64.init)), ("execs_per_minute", o.execsPerMinute.map(Int64.init)),
                              ("max_memory_bytes", o.maxMemoryBytes), ("max_queued", o.maxQueued.map(Int64.init))] {
            if let value { detail[name] = .int(value) }
        }
        return TenantEvent(tenantId: tenant.id, kind: .quotaSet, actor: actor, detail: detail)
    }
}

/// What every engine needs to make a tenant: its name's rules and a fresh id.
public enum TenantRules {
    /// Refuses a tenant name no engine stores (empty, over 128 bytes, spaces or control characters).
    public static func checkName(_ name: String) throws(SandboxError) {
        guard !name.isEmpty, name.utf8.count <= 128,
              name.unicodeScalars.allSatisfy({ !CharacterSet.controlCharacters.contains($0) && !CharacterSet.whitespaces.contains($0) })
        else {
            throw SandboxError(.invalidRequest, "tenant name '\(name)' is not valid; use 1 to 128 characters without spaces or control characters, e.g. acme")
        }
    }

    /// A new tenant named `name` (checked), with a random id and no overrides.
    public static func fresh(name: String) throws(SandboxError) -> Tenant {
        try checkName(name)
        var rng = SystemRandomNumberGenerator()
        return Tenant(id: "tnt_" + APIKeyText.hex(APIKeyText.randomBytes(8, using: &rng)), name: name)
    }

    /// What a tenant created before per-tenant overrides stored: the old defaults, written out in
    /// full. Migration `v10-quota-overrides` turns exactly this text into `{}` (no overrides).
    public static let legacyDefaultQuota = #"{"execs_per_minute":6000,"max_memory_bytes":68719476736,"max_sandboxes":100}"#
}
