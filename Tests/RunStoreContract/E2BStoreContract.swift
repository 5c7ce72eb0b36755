import Foundation
import SandboxCore
import SandboxStore
import Testing

/// What every engine keeps for E2B's API: keys in the shape E2B's SDKs check, stored as any key
/// (hashed), and a sandbox's envd access (hashes of its tokens, `secure`) kept with its record.
public enum E2BStoreContract {
    public static func e2bKeys(store: any SandboxStore) async throws {
        let (key, record) = try await store.createAPIKey(tenantName: "acme", shape: .e2b)
        #expect(key.wholeMatch(of: /e2b_[0-9a-f]{40}/) != nil, "\(key)")
        #expect(APIKeyText.isKeyID(record.id) && APIKeyText.keyID(of: key) == record.id)
        #expect(try await store.authenticate(key: key) == record)
        let plain = try await store.createAPIKey(tenantName: "acme").record
        #expect(plain.tenantId == record.tenantId, "an E2B key is an ordinary key of its tenant")

        var wrong = Array(key)
        wrong[wrong.count - 1] = wrong.last == "0" ? "1" : "0"
        for bad in [String(wrong), key.uppercased(), String(key.dropLast()), key + "0", "e2b_" + String(repeating: "0", count: 40)] {
            #expect(try await store.authenticate(key: bad) == nil, "\(bad)")
        }
        let again = try await store.createAPIKey(tenantName: "acme", shape: .e2b)
        #expect(again.key != key && again.record.id != record.id)
        try await store.revokeAPIKey(id: record.id)
        #expect(try await store.authenticate(key: key) == nil)
        #expect(try await store.authenticate(key: again.key) == again.record, "revoking one key leaves the others")
    }

    public static func envdAccess(store: any SandboxStore) async throws {
        let token = EnvdAccess.newToken()
        #expect(token.count == 64 && token.allSatisfy(\.isHexDigit), "256 random bits")
        var box = sampleSandbox(id: "sbx-e2b", metadata: ["k": "v"])
        box.envdAccess = EnvdAccess(secure: true, tokenHashes: [EnvdAccess.hash(token)], template: "base")
        try await store.insertSandbox(box)
        let stored = try #require(try await store.sandbox(id: "sbx-e2b"))
        #expect(stored == box)
        #expect(stored.envdAccess?.accepts(token) == true)
        #expect(stored.envdAccess?.accepts(EnvdAccess.newToken()) == false)
        #expect(!(stored.envdAccess?.tokenHashes.contains(token) ?? true), "only the hash is stored")

        var more = stored
        let second = EnvdAccess.newToken()
        more.envdAccess?.add(hash: EnvdAccess.hash(second))
        try await store.updateSandbox(more)
        let updated = try #require(try await store.sandbox(id: "sbx-e2b"))
        #expect(updated.envdAccess?.accepts(token) == true && updated.envdAccess?.accepts(second) == true)

        let plain = sampleSandbox(id: "sbx-plain")
        try await store.insertSandbox(plain)
        #expect(try await store.sandbox(id: "sbx-plain")?.envdAccess == nil, "a /v1 sandbox has no envd access of its own")
    }
}
