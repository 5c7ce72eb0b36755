import Foundation
#if canImport(Glibc)
import Glibc
#endif
import SandboxCore
import SandboxStore
import Testing

/// What every engine's secret store must do, checked through a ``SecretVault`` on it (the key file
/// in `dataDirectory`).
public enum SecretStoreContract {
    /// set, reveal, list (no values), replace (created time kept), remove, and the errors for names
    /// the store does not hold.
    public static func vaultRoundTrip(store: any SecretStore, dataDirectory: String) async throws {
        let vault = try SecretVault.open(store: store, dataDirectory: dataDirectory)
        #expect(try await vault.list().isEmpty)

        let set = try await vault.set(
            "OPENAI_API_KEY", value: Array("sk-live-123".utf8), hosts: ["API.OpenAI.com.", "*.openai.com"], header: "Authorization: Bearer {value}")
        #expect(set.hosts == ["api.openai.com", "*.openai.com"], "hosts are stored normalized")
        try await vault.set("GITHUB_TOKEN", value: Array("ghp_abc".utf8), hosts: ["api.github.com"], header: nil)

        let revealed = try await vault.reveal("OPENAI_API_KEY")
        #expect(revealed == Secret(name: "OPENAI_API_KEY", value: Array("sk-live-123".utf8), hosts: ["api.openai.com", "*.openai.com"], header: "Authorization: Bearer {value}"))
        #expect(!"\(revealed)".contains("sk-live-123"), "a revealed secret does not print its value")

        let listed = try await vault.list()
        #expect(listed.map(\.name) == ["GITHUB_TOKEN", "OPENAI_API_KEY"])
        #expect(listed[1].header == "Authorization: Bearer {value}" && listed[0].header == nil)
        let records = try await store.secrets()
        #expect(records.allSatisfy { !$0.sealed.contains(bytes: Array("sk-live-123".utf8)) && !$0.sealed.contains(bytes: Array("ghp_abc".utf8)) },
                "the store holds sealed values only")

        // Replacing keeps the created time and moves the updated time.
        let before = try #require(try await store.secret(name: "GITHUB_TOKEN"))
        try await Task.sleep(for: .milliseconds(5))
        try await vault.set("GITHUB_TOKEN", value: Array("ghp_new".utf8), hosts: ["github.com"], header: "X-Token: {value}")
        let after = try #require(try await store.secret(name: "GITHUB_TOKEN"))
        #expect(after.createdAt == before.createdAt && after.updatedAt > before.updatedAt)
        #expect(try await vault.reveal("GITHUB_TOKEN").value == Array("ghp_new".utf8))
        #expect(try await store.secrets().count == 2)

        try await vault.remove("GITHUB_TOKEN")
        #expect(try await vault.list().map(\.name) == ["OPENAI_API_KEY"])
        #expect(try await store.deleteSecret(name: "GITHUB_TOKEN") == false)
        await #expect { try await vault.remove("GITHUB_TOKEN") } throws: { e in
            let e = e as! SandboxError
            return e.code == .notFound && e.message.contains("GITHUB_TOKEN") && e.message.contains("it holds: OPENAI_API_KEY")
        }
        await #expect { try await vault.reveal("NOPE") } throws: { ($0 as? SandboxError)?.code == .notFound }

        // A profile asking for a name the server does not hold: invalid_request naming it, the
        // known ones and the command that sets it.
        await #expect { try await vault.resolve(names: ["OPENAI_API_KEY", "ANTHROPIC_API_KEY"], tenantId: nil, placeholders: [:]) } throws: { e in
            let e = e as! SandboxError
            return e.code == .invalidRequest && e.message.contains("'ANTHROPIC_API_KEY'") && e.message.contains("known: OPENAI_API_KEY")
                && e.message.contains("sandboxer secret set ANTHROPIC_API_KEY --tenant TENANT --hosts")
        }
        let resolved = try await vault.resolve(names: ["OPENAI_API_KEY", "OPENAI_API_KEY"], tenantId: nil, placeholders: [:])
        #expect(resolved.count == 1 && resolved[0].value == Array("sk-live-123".utf8) && SecretPlaceholder.isPlaceholder(resolved[0].placeholder))
        #expect(resolved[0].hosts == ["api.openai.com", "*.openai.com"] && resolved[0].header == "Authorization: Bearer {value}")
        let kept = try await vault.resolve(names: ["OPENAI_API_KEY"], tenantId: nil, placeholders: ["OPENAI_API_KEY": resolved[0].placeholder])
        #expect(kept[0].placeholder == resolved[0].placeholder, "a sandbox adopted after a restart keeps its placeholder")
        #expect(try await vault.resolve(names: ["OPENAI_API_KEY"], tenantId: nil, placeholders: [:])[0].placeholder != resolved[0].placeholder)
    }

    /// A tenant's secret is that tenant's alone: another tenant neither gets it nor learns its name;
    /// the owner's own secret wins over a shared one of the same name; a sealed value moved to
    /// another tenant (or to shared) in the database does not open.
    public static func tenantScopes(store: any SecretStore, dataDirectory: String) async throws {
        let vault = try SecretVault.open(store: store, dataDirectory: dataDirectory)
        try await vault.set("ACME_KEY", value: Array("acme-only".utf8), hosts: ["api.acme.example"], header: nil, scope: .tenant("tnt_acme"))
        try await vault.set("API_KEY", value: Array("shared-v".utf8), hosts: ["api.example.com"], header: nil, scope: .shared)
        try await vault.set("API_KEY", value: Array("acme-v".utf8), hosts: ["api.example.com"], header: nil, scope: .tenant("tnt_acme"))

        #expect(try await vault.resolve(names: ["ACME_KEY"], tenantId: "tnt_acme", placeholders: [:])[0].value == Array("acme-only".utf8))
        await #expect { try await vault.resolve(names: ["ACME_KEY"], tenantId: "tnt_mallory", placeholders: [:]) } throws: { e in
            let e = e as! SandboxError
            return e.code == .invalidRequest && e.message.contains("'ACME_KEY'") && e.message.contains("known: API_KEY")
        }
        await #expect(throws: SandboxError.self, "sandboxer run (no tenant) sees shared secrets only") {
            try await vault.resolve(names: ["ACME_KEY"], tenantId: nil, placeholders: [:])
        }
        #expect(try await vault.resolve(names: ["API_KEY"], tenantId: "tnt_acme", placeholders: [:])[0].value == Array("acme-v".utf8))
        #expect(try await vault.resolve(names: ["API_KEY"], tenantId: "tnt_mallory", placeholders: [:])[0].value == Array("shared-v".utf8))
        #expect(try await vault.list(scope: .tenant("tnt_acme")).map(\.name) == ["ACME_KEY", "API_KEY"])
        #expect(try await vault.list(scope: .shared).map(\.name) == ["API_KEY"])

        // Moved to another tenant in the database: refused, not revealed.
        var moved = try #require(try await store.secret(name: "ACME_KEY", scope: .tenant("tnt_acme")))
        moved.scope = .tenant("tnt_mallory")
        try await store.putSecret(moved)
        await #expect(throws: SandboxError.self) { try await vault.reveal("ACME_KEY", tenantId: "tnt_mallory") }

        try await vault.remove("API_KEY", scope: .tenant("tnt_acme"))
        #expect(try await vault.reveal("API_KEY", tenantId: "tnt_acme").value == Array("shared-v".utf8), "removing the own one uncovers the shared one")
    }

    /// A record whose hosts were edited in the database (to send the value elsewhere) no longer opens.
    public static func editedHostsRefused(store: any SecretStore, dataDirectory: String) async throws {
        let vault = try SecretVault.open(store: store, dataDirectory: dataDirectory)
        try await vault.set("API_KEY", value: Array("v".utf8), hosts: ["api.example.com"], header: nil)
        var record = try #require(try await store.secret(name: "API_KEY"))
        record.hosts = ["attacker.example"]
        try await store.putSecret(record)
        await #expect { try await vault.reveal("API_KEY") } throws: { e in
            let e = e as! SandboxError
            return e.code == .system && e.message.contains("cannot be decrypted") && e.message.contains("sandboxer secret set API_KEY")
        }
    }
}

extension [UInt8] {
    /// Whether `needle` occurs anywhere in these bytes.
    /// (`memchr` + `memcmp`: a generic slice comparison per offset keeps a debug build's test thread busy
    /// for seconds on a store's few MiB.)
    public func contains(bytes needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, needle.count <= count else { return false }
        return withUnsafeBytes { hay in
            needle.withUnsafeBytes { n in
                guard let h = hay.baseAddress, let p = n.baseAddress else { return false }
                let last = hay.count - n.count
                var i = 0
                while i <= last, let hit = memchr(h + i, Int32(needle[0]), last - i + 1) {
                    let at = h.distance(to: UnsafeRawPointer(hit))
                    if memcmp(h + at, p, n.count) == 0 { return true }
                    i = at + 1
                }
                return false
            }
        }
    }
}
