import Crypto
import SandboxCore
import Foundation

/// The text form of API keys, `sbx_key_<16 hex>_<64 hex>`: the public key id (`key_<16 hex>`,
/// safe to log and to pass to `sandboxer key revoke`) followed by a 32-byte secret from the
/// system's CSPRNG. The store keeps only the SHA-256 of the whole key. Shared by every store engine.
public enum APIKeyText {
    public static let prefix = "sbx_"
    public static let idHexCount = 16
    public static let secretByteCount = 32

    /// A new key and its id.
    public static func generate() -> (id: String, key: String) {
        var rng = SystemRandomNumberGenerator()
        let idHex = hex(randomBytes(idHexCount / 2, using: &rng))
        let secret = hex(randomBytes(secretByteCount, using: &rng))
        let id = "key_\(idHex)"
        return (id, "\(prefix)\(id)_\(secret)")
    }

    /// The key id of a well-formed key; nil for anything else (wrong prefix, length, characters).
    public static func keyID(of key: String) -> String? {
        let u = Array(key.utf8)
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

    public init(tenantName: String) throws(SandboxError) {
        tenant = try TenantRules.fresh(name: tenantName)
        quota = try JSONColumn.encode(tenant.overrides)
        (id, key) = APIKeyText.generate()
        hash = APIKeyText.hash(key)
    }
}
