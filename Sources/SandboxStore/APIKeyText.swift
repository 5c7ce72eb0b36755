import Crypto
import SandboxCore
import Foundation

/// The shapes a key is made in: sandboxer's own, or the one E2B's SDKs check before they send a
/// key (`e2b_` and 40 lowercase hex digits). Both are ordinary keys of their tenant.
public enum APIKeyShape: String, Sendable, CaseIterable {
    case sandboxer
    case e2b
}

/// The text form of API keys, `sbx_key_<16 hex>_<64 hex>`: the public key id (`key_<16 hex>`,
/// safe to log and to pass to `sandboxer key revoke`) followed by a 32-byte secret from the
/// system's CSPRNG. The store keeps only the SHA-256 of the whole key. Shared by every store engine.
///
/// E2B-shaped keys (`e2b_<40 hex>`, ``APIKeyShape/e2b``) are 20 bytes from the CSPRNG, all of it
/// secret (160 bits); their id is `key_` and the first 16 hex digits of the key's SHA-256, so it
/// is found from the key as a `sbx_` key's is, and stored, logged and revoked the same way.
public enum APIKeyText {
    public static let prefix = "sbx_"
    public static let idHexCount = 16
    public static let secretByteCount = 32
    public static let e2bPrefix = "e2b_"
    public static let e2bSecretByteCount = 20

    /// A new key and its id.
    public static func generate() -> (id: String, key: String) {
        generate(.sandboxer)
    }

    /// A new key of the given shape and its id.
    public static func generate(_ shape: APIKeyShape) -> (id: String, key: String) {
        var rng = SystemRandomNumberGenerator()
        switch shape {
        case .sandboxer:
            let idHex = hex(randomBytes(idHexCount / 2, using: &rng))
            let secret = hex(randomBytes(secretByteCount, using: &rng))
            let id = "key_\(idHex)"
            return (id, "\(prefix)\(id)_\(secret)")
        case .e2b:
            let key = e2bPrefix + hex(randomBytes(e2bSecretByteCount, using: &rng))
            return (e2bKeyID(key), key)
        }
    }

    /// The id of an E2B-shaped key: `key_` and the first 16 hex digits of its SHA-256.
    static func e2bKeyID(_ key: String) -> String {
        "key_" + String(hex(Array(hash(key))).prefix(idHexCount))
    }

    /// The key id of a well-formed key; nil for anything else (wrong prefix, length, characters).
    public static func keyID(of key: String) -> String? {
        let u = Array(key.utf8)
        if key.hasPrefix(e2bPrefix) {
            guard u.count == e2bPrefix.utf8.count + 2 * e2bSecretByteCount, u[e2bPrefix.utf8.count...].allSatisfy(isLowerHex) else { return nil }
            return e2bKeyID(key)
        }
        let idStart = prefix.utf8.count
        let idLength = 4 + idHexCount
        guard u.count == idStart + idLength + 1 + 2 * secretByteCount,
              key.hasPrefix("\(prefix)key_"), u[idStart + idLength] == UInt8(ascii: "_"),
              u[(idStart + 4)..<(idStart + idLength)].allSatisfy(isLowerHex),
              u[(idStart + idLength + 1)...].allSatisfy(isLowerHex)
        else { return nil }
        return String(decoding: u[idStart..<(idStart + idLength)], as: UTF8.self)
    }

    /// Whether `id` has the shape of a key id (`key_` and 16 lowercase hex digits).
    public static func isKeyID(_ id: String) -> Bool {
        let u = Array(id.utf8)
        return u.count == 4 + idHexCount && id.hasPrefix("key_") && u[4...].allSatisfy(isLowerHex)
    }

    /// SHA-256 of the whole key text.
    public static func hash(_ key: String) -> Data {
        Data(SHA256.hash(data: Data(key.utf8)))
    }

    /// Compares two digests in time that depends only on their length.
    public static func constantTimeEqual(_ a: Data, _ b: Data) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for (x, y) in zip(a, b) { diff |= x ^ y }
        return diff == 0
    }

    private static func isLowerHex(_ c: UInt8) -> Bool {
        (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "f"))
    }

    /// `n` bytes from the system's CSPRNG.
    public static func randomBytes(_ n: Int, using rng: inout SystemRandomNumberGenerator) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(n + 8)
        while out.count < n {
            withUnsafeBytes(of: rng.next() as UInt64) { out.append(contentsOf: $0) }
        }
        return Array(out.prefix(n))
    }

    public static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0xf)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// What creating a key needs before it touches a database: the tenant to create when missing (its
/// name checked, its quota as stored), the key's id and secret text, and the hash that is stored.
public struct NewAPIKey: Sendable {
    public let tenant: Tenant
    public let quota: String
    public let id: String
    public let key: String
    public let hash: Data

    public init(tenantName: String, shape: APIKeyShape = .sandboxer) throws(SandboxError) {
        tenant = try TenantRules.fresh(name: tenantName)
        quota = try JSONColumn.encode(tenant.overrides)
        (id, key) = APIKeyText.generate(shape)
        hash = APIKeyText.hash(key)
    }
}
