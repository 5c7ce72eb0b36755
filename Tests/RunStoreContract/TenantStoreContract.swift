import Foundation
import SandboxCore
import SandboxStore
import Testing

/// What every engine must do with tenants' quotas: a tenant starts with none of its own, the
/// operator sets, keeps and clears them one by one, and bad values or unknown tenants are refused.
public enum TenantStoreContract {
    public static func quotaOverrides(store: any SandboxStore) async throws {
        let acme = try await store.ensureTenant(name: "acme")
        _ = try await store.ensureTenant(name: "beta")
        #expect(acme.overrides == QuotaOverrides(), "a new tenant has no quota of its own: the server's defaults apply")
        #expect(try await store.tenants().map(\.name) == ["acme", "beta"])
        #expect(try await store.tenant(name: "acme") == acme)
        #expect(try await store.tenant(name: "nobody") == nil)

        var set = QuotaChanges()
        set.maxSandboxes = .set(5)
        set.maxMemoryBytes = .set(16 << 30)
        let changed = try await store.changeQuota(tenantName: "acme", set)
        #expect(changed.overrides == QuotaOverrides(maxSandboxes: 5, maxMemoryBytes: 16 << 30))
        #expect(try await store.tenant(id: acme.id)?.overrides == changed.overrides, "stored, not only returned")

        var more = QuotaChanges()
        more.maxQueued = .set(3)
        more.maxMemoryBytes = .clear
        let again = try await store.changeQuota(tenantName: "acme", more)
        #expect(again.overrides == QuotaOverrides(maxSandboxes: 5, maxQueued: 3), "fields not named are kept; a cleared one is the default again")
        let defaults = TenantQuota(maxSandboxes: 100, execsPerMinute: 6000, maxMemoryBytes: 8 << 30, maxQueued: 50)
        #expect(defaults.applying(again.overrides) == TenantQuota(maxSandboxes: 5, execsPerMinute: 6000, maxMemoryBytes: 8 << 30, maxQueued: 3))
        #expect(try await store.tenant(name: "beta")?.overrides == QuotaOverrides(), "another tenant is untouched")

        var bad = QuotaChanges()
        bad.maxSandboxes = .set(-1)
        await #expect { _ = try await store.changeQuota(tenantName: "acme", bad) } throws: {
            ($0 as? SandboxError)?.code == .invalidRequest && ($0 as? SandboxError)?.message.contains("max_sandboxes") == true
        }
        bad = QuotaChanges()
        bad.maxMemoryBytes = .set(4096)
        await #expect { _ = try await store.changeQuota(tenantName: "acme", bad) } throws: {
            ($0 as? SandboxError)?.message.contains("max_memory_bytes") == true
        }
        #expect(try await store.tenant(id: acme.id)?.overrides == again.overrides, "a refused change stores nothing")
        await #expect { _ = try await store.changeQuota(tenantName: "nobody", set) } throws: {
            ($0 as? SandboxError)?.code == .notFound && ($0 as? SandboxError)?.message.contains("sandboxer tenant ls") == true
        }
    }
}
