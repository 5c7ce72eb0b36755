import Crypto
import Foundation

/// Who may use a sandbox through E2B's sandbox plane without the owner's API key: the hashes of
/// the envd access tokens handed out for it (by the E2B create call, and one more by each connect
/// call, since only hashes are kept and a token cannot be shown twice) and whether the sandbox
/// was created `secure` (then a request needs a token or the owner's key).
public struct EnvdAccess: Sendable, Equatable, Codable {
    /// At most this many tokens are valid at once: the create call's and the newest connect calls'.
    public static let maxTokens = 16
    /// Random bytes of a token (256 bits).
    public static let tokenByteCount = 32

    public var secure: Bool
    /// Lowercase hex SHA-256 of each valid token; the first is the create call's.
    public var tokenHashes: [String]
    /// The template the E2B create call named (`base`, a template's name), reported back as its
    /// `templateID`.
    public var template: String?

    public init(secure: Bool, tokenHashes: [String] = [], template: String? = nil) {
        self.secure = secure
        self.tokenHashes = tokenHashes
        self.template = template
    }

    /// A new token from the system's CSPRNG (64 lowercase hex digits).
    public static func newToken() -> String {
        var rng = SystemRandomNumberGenerator()
        return APIKeyText.hex(APIKeyText.randomBytes(tokenByteCount, using: &rng))
    }

    /// The hash kept for `token`.
    public static func hash(_ token: String) -> String {
        APIKeyText.hex(Array(SHA256.hash(data: Data(token.utf8))))
    }

    /// Adds a token's hash; beyond ``maxTokens`` the oldest connect call's token stops working
    /// (the create call's stays).
    public mutating func add(hash: String) {
        tokenHashes.append(hash)
        while tokenHashes.count > Self.maxTokens { tokenHashes.remove(at: 1) }
    }

    /// Whether `token` is one of the valid tokens; each comparison takes time that depends only
    /// on the lengths (the hashes all have the same length).
    public func accepts(_ token: String) -> Bool {
        let given = Data(Self.hash(token).utf8)
        var found = false
        for stored in tokenHashes where APIKeyText.constantTimeEqual(Data(stored.utf8), given) { found = true }
        return found
    }
}
