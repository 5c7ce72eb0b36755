import Crypto
import Foundation
import Logging
import SandboxCore

/// Encryption at rest for secret values: AES-256-GCM (swift-crypto) under one key kept in
/// `<data>/secrets.key` — a file created 0600 by the user that runs sandboxer (root in a
/// deployment) and refused when others could read it. The database holds only sealed values, so a
/// copy of the database alone reveals nothing.
///
/// A sealed value is `0x01 ‖ nonce (12) ‖ ciphertext ‖ tag (16)`. Its authenticated data binds the
/// secret's name, hosts and header template: a sealed value copied to another name, or a record
/// whose hosts were edited in the database to send it elsewhere, fails to open.
///
/// With a PostgreSQL store the key file still lives in the local data directory: every node of
/// the fleet needs the same `secrets.key`.
///
/// `@unchecked Sendable`: swift-crypto's `SymmetricKey` is not marked Sendable, but it is an
/// immutable value whose storage nothing mutates after creation.
public struct SecretBox: @unchecked Sendable {
    /// File name of the key inside the data directory.
    public static let keyFileName = "secrets.key"
    static let version: UInt8 = 1

    private let key: SymmetricKey

    /// A box with a given key (tests; ``loadOrCreate(directory:logger:)`` otherwise).
    public init(key: SymmetricKey) {
        self.key = key
    }

    /// Reads `<directory>/secrets.key`, creating it (a new random 256-bit key, mode 0600, the
    /// directory 0700 when missing) the first time. A key file others can read, owned by another
    /// user or not holding a 256-bit key is refused with what to do.
    public static func loadOrCreate(directory: String, logger: Logger = Logger(label: "sandboxer.secrets")) throws(SandboxError) -> SecretBox {
        let path = (directory as NSString).appendingPathComponent(keyFileName)
        try PrivateFile.ensureDirectory(directory, what: "data directory")
        let fresh = SymmetricKey(size: .bits256).withUnsafeBytes { Data($0).base64EncodedString() }
        if try PrivateFile.createIfMissing(path, bytes: Array((fresh + "\n").utf8), mode: 0o600, what: "secrets key file") {
            logger.notice("secrets key created; every node sharing this store needs a copy", metadata: ["path": "\(path)"])
        }
        let text = String(decoding: try PrivateFile.readPrivate(path, what: "secrets key file"), as: UTF8.self)
        guard let raw = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)), raw.count == 32 else {
            throw SandboxError(
                .system,
                "secrets key file \(path) does not hold a base64 256-bit key; restore it from a backup (or another node), or move it away to start over (secrets set with the old key are then lost)")
        }
        return SecretBox(key: SymmetricKey(data: raw))
    }

    /// Encrypts `value` for the secret `name` with these hosts and header.
    public func seal(_ value: [UInt8], scope: SecretScope = .shared, name: String, hosts: [String], header: String?) throws(SandboxError) -> [UInt8] {
        do {
            let box = try AES.GCM.seal(value, using: key, authenticating: Self.context(scope: scope, name: name, hosts: hosts, header: header))
            guard let combined = box.combined else { throw SandboxError(.system, "sealing secret \(name): no combined form") }
            return [Self.version] + combined
        } catch let error as SandboxError {
            throw error
        } catch {
            throw SandboxError(.system, "sealing secret \(name) failed (\(error)); retry")
        }
    }

    /// Decrypts a sealed value. A value sealed under another key, for another name, hosts or
    /// header, or altered in any byte is refused.
    public func open(_ sealed: [UInt8], scope: SecretScope = .shared, name: String, hosts: [String], header: String?) throws(SandboxError) -> [UInt8] {
        let refused = SandboxError(
            .system,
            "secret '\(name)' cannot be decrypted: it was sealed with another secrets.key, or its record was altered in the database; copy the right secrets.key to this node, or set the secret again with `sandboxer secret set \(name) --hosts …`")
        guard sealed.first == Self.version else { throw refused }
        do {
            let box = try AES.GCM.SealedBox(combined: sealed.dropFirst())
            return [UInt8](try AES.GCM.open(box, using: key, authenticating: Self.context(scope: scope, name: name, hosts: hosts, header: header)))
        } catch {
            throw refused
        }
    }

    /// The authenticated data: a label, then name, hosts and header, each length-prefixed; a
    /// tenant's secret has its own label with the tenant's id first (a sealed value copied to
    /// another tenant, or to shared, does not open), shared ones keep the label of before scopes.
    static func context(scope: SecretScope, name: String, hosts: [String], header: String?) -> [UInt8] {
        var out = Array("sandboxer-secret-v1".utf8)
        func field(_ text: String) {
            let bytes = Array(text.utf8)
            withUnsafeBytes(of: UInt32(bytes.count).bigEndian) { out += $0 }
            out += bytes
        }
        if case .tenant(let id) = scope {
            out = Array("sandboxer-secret-v2-tenant".utf8)
            field(id)
        }
        field(name)
        withUnsafeBytes(of: UInt32(hosts.count).bigEndian) { out += $0 }
        hosts.forEach(field)
        if let header { out.append(1); field(header) } else { out.append(0) }
        return out
    }
}
