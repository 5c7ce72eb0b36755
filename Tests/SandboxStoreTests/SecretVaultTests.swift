import Foundation
import RunStoreContract
import SandboxCore
import Testing
@testable import SandboxStore

@Suite("SecretVault on SQLite: secrets sealed in the store, revealed only with the key file")
struct SecretVaultTests {
    @Test("set, reveal, list without values, replace, remove; unknown names are refused naming them")
    func roundTrip() async throws {
        try await withStore { store, temp in
            try await SecretStoreContract.vaultRoundTrip(store: store, dataDirectory: temp.dir)
        }
    }

    @Test("a tenant's secret is its own: another tenant neither gets it nor learns its name; own before shared")
    func tenantScopes() async throws {
        try await withStore { store, temp in
            try await SecretStoreContract.tenantScopes(store: store, dataDirectory: temp.dir)
        }
    }

    @Test("a record whose hosts were edited in the database does not open")
    func editedHosts() async throws {
        try await withStore { store, temp in
            try await SecretStoreContract.editedHostsRefused(store: store, dataDirectory: temp.dir)
        }
    }

    @Test("the plaintext never reaches the database file or its WAL; the name and hosts do")
    func sealedOnDisk() async throws {
        let temp = TempData()
        defer { temp.cleanup() }
        let store = try temp.open()
        let vault = try SecretVault.open(store: store, dataDirectory: temp.dir)
        let value = "sk-plaintext-\(UUID().uuidString)"
        try await vault.set("OPENAI_API_KEY", value: Array(value.utf8), hosts: ["api.openai.com"], header: "Authorization: Bearer {value}")
        func check(_ when: String) {
            let bytes = temp.diskBytes()
            #expect(!bytes.contains(bytes: Array(value.utf8)), "plaintext on disk \(when)")
            #expect(!bytes.contains(bytes: Array(value.suffix(16).utf8)), "part of the plaintext on disk \(when)")
            // The search can succeed: what is stored in the clear is found.
            #expect(bytes.contains(bytes: Array("api.openai.com".utf8)), "hosts are stored \(when)")
        }
        check("with the WAL")
        try store.close()
        check("after close")
        let reopened = try temp.open()
        defer { try? reopened.close() }
        #expect(try await SecretVault.open(store: reopened, dataDirectory: temp.dir).reveal("OPENAI_API_KEY").value == Array(value.utf8))
    }

    @Test("a store copied without its key file cannot reveal: another key is refused")
    func anotherKeyFile() async throws {
        try await withStore { store, temp in
            try await SecretVault.open(store: store, dataDirectory: temp.dir).set("TOKEN", value: [0x61], hosts: ["a.example.com"], header: nil)
            let elsewhere = TempData()
            defer { elsewhere.cleanup() }
            let stranger = try SecretVault.open(store: store, dataDirectory: elsewhere.dir)
            await #expect { try await stranger.reveal("TOKEN") } throws: { ($0 as? SandboxError)?.message.contains("another secrets.key") == true }
        }
    }

    /// Tenant names to ids as the import file's caller maps them.
    @Sendable static func tenantIds(_ name: String) async throws -> String { "tnt-" + name }

    @Test("an import file sets every line; a bad line fails naming file and line before anything is stored")
    func importFile() async throws {
        try await withStore { store, temp in
            let vault = try SecretVault.open(store: store, dataDirectory: temp.dir)
            let path = temp.root + "/secrets.env"
            try """
                # operator secrets
                OPENAI_API_KEY=sk 1=2 hosts=api.openai.com header=Authorization: Bearer {value}

                GITHUB_TOKEN=ghp_x hosts=api.github.com,*.githubusercontent.com
                GITHUB_TOKEN=ghp_acme tenant=acme hosts=api.github.com
                """.write(toFile: path, atomically: true, encoding: .utf8)
            chmod(path, 0o644)
            await #expect { try await vault.importFile(path, tenantId: Self.tenantIds) } throws: { ($0 as? SandboxError)?.message.contains("chmod 600") == true }
            chmod(path, 0o600)
            let set = try await vault.importFile(path, tenantId: Self.tenantIds)
            #expect(set.map(\.name) == ["OPENAI_API_KEY", "GITHUB_TOKEN", "GITHUB_TOKEN"])
            #expect(set.map(\.scope) == ["shared", "shared", "tnt-acme"], "a line with tenant= is that tenant's, the others shared")
            #expect(try await vault.reveal("GITHUB_TOKEN", tenantId: "tnt-acme").value == Array("ghp_acme".utf8))
            #expect(try await vault.reveal("GITHUB_TOKEN", tenantId: "tnt-other").value == Array("ghp_x".utf8))
            #expect(try await vault.reveal("OPENAI_API_KEY") == Secret(
                name: "OPENAI_API_KEY", value: Array("sk 1=2".utf8), hosts: ["api.openai.com"], header: "Authorization: Bearer {value}"))
            #expect(try await vault.reveal("GITHUB_TOKEN").hosts == ["api.github.com", "*.githubusercontent.com"])

            try "A=1 hosts=a.example.com\nB=2 hosts=10.0.0.1\n".write(toFile: path, atomically: true, encoding: .utf8)
            chmod(path, 0o600)
            await #expect { try await vault.importFile(path, tenantId: Self.tenantIds) } throws: { e in
                let e = e as! SandboxError
                return e.code == .invalidRequest && e.message.contains(path) && e.message.contains("secret B") && e.message.contains("10.0.0.1")
            }
            #expect(try await store.secret(name: "A") == nil, "nothing of a bad file is stored")
            try "JUSTANAME\n".write(toFile: path, atomically: true, encoding: .utf8)
            chmod(path, 0o600)
            await #expect { try await vault.importFile(path, tenantId: Self.tenantIds) } throws: { ($0 as? SandboxError)?.message.contains("\(path):1:") == true }
        }
    }
}
