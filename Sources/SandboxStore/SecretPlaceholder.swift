import Foundation
import SandboxCore

/// The stand-ins a sandbox sees instead of secret values: `sbx_secret_` and 32 random URL-safe
/// characters (192 bits from the system's CSPRNG), unique per sandbox and secret.
public enum SecretPlaceholder {
    public static let prefix = "sbx_secret_"
    /// Random characters after the prefix.
    public static let randomLength = 32
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// A fresh placeholder.
    public static func make() -> String {
        var rng = SystemRandomNumberGenerator()
        // 64 symbols: the low 6 bits of a random byte pick one without bias.
        let chars = (0..<randomLength).map { _ in alphabet[Int(UInt8.random(in: .min ... .max, using: &rng) & 63)] }
        return prefix + String(decoding: chars, as: UTF8.self)
    }

    /// Whether `text` has the shape ``make()`` produces.
    public static func isPlaceholder(_ text: String) -> Bool {
        guard text.hasPrefix(prefix) else { return false }
        let rest = text.utf8.dropFirst(prefix.utf8.count)
        return rest.count == randomLength && rest.allSatisfy { alphabet.contains($0) }
    }
}

extension SecretVault: SecretResolver {
    /// Resolves the secrets a profile or create call asks for, in the order asked (a name asked
    /// twice once), each with `placeholders[name]` when given (a sandbox adopted after a restart)
    /// or a fresh ``SecretPlaceholder``: the tenant's own secret of that name, else a shared one.
    /// A name the tenant cannot use fails the whole request with `invalid_request` naming it —
    /// never an empty variable, and never another tenant's secret.
    public func resolve(names: [String], tenantId: String?, placeholders: [String: String]) async throws(SandboxError) -> [EgressSecret] {
        var out: [EgressSecret] = []
        for name in names where !out.contains(where: { $0.name == name }) {
            guard let record = try await visible(name, tenantId: tenantId) else { throw try await missing(name, .invalidRequest, tenantId: tenantId) }
            let secret = try open(record)
            out.append(EgressSecret(
                name: name, placeholder: placeholders[name] ?? SecretPlaceholder.make(), value: secret.value, hosts: secret.hosts, header: secret.header))
        }
        return out
    }
}
