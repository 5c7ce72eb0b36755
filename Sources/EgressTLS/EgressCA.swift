import Crypto
import Foundation
import Logging
import NIOSSL
import SandboxCore
import Synchronization
import X509

/// The per-server certificate authority of the egress proxy. The proxy terminates TLS only for
/// the hosts of a sandbox's secrets, with a leaf certificate this CA issues for the host; the CA's
/// certificate goes into the sandbox's trust store (``trustBundle(hostBundle:)``), so clients in
/// the sandbox accept the proxy and nobody else's copy of a sandboxer.
///
/// A P-256 key (`egress-ca-key.pem`, 0600) and a self-signed CA certificate (`egress-ca.pem`,
/// 0644, 10 years, `CN=sandboxer egress CA <hostname>`) in the data directory, made on first use
/// and reused on restart; leaf certificates live in memory only (``serverContext(for:)``).
public final class EgressCA: Sendable {
    /// File name of the CA certificate inside the directory.
    public static let certificateFileName = "egress-ca.pem"
    /// File name of the CA's private key inside the directory.
    public static let keyFileName = "egress-ca-key.pem"
    /// How long a new CA certificate is valid.
    static let caLifetime: TimeInterval = 10 * 365 * 86_400
    /// A CA certificate closer than this to its end is issued anew (same key) on load.
    static let caRenewBefore: TimeInterval = 30 * 86_400

    /// The CA certificate, PEM.
    public let caCertificatePEM: String
    /// The CA certificate.
    public let certificate: Certificate
    /// swift-crypto does not mark keys Sendable; this one is immutable and only read (signing).
    nonisolated(unsafe) let key: P256.Signing.PrivateKey
    let leaves: Mutex<LeafCache>
    let logger: Logger

    init(certificate: Certificate, key: P256.Signing.PrivateKey, cacheSize: Int, logger: Logger) throws(SandboxError) {
        self.certificate = certificate
        self.key = key
        self.caCertificatePEM = try Self.pem(certificate)
        self.leaves = Mutex(LeafCache(capacity: cacheSize))
        self.logger = logger
    }

    /// Loads the CA from `directory`, creating key and certificate when missing (a certificate
    /// that is missing, for another key, or near its end is issued anew from the kept key). A key
    /// file others can read is refused. `cacheSize` bounds the leaf contexts kept (least recently
    /// used go first).
    public static func loadOrCreate(
        directory: String, hostname: String = ProcessInfo.processInfo.hostName, cacheSize: Int = 256,
        logger: Logger = Logger(label: "sandboxer.egress.tls")
    ) throws(SandboxError) -> EgressCA {
        try PrivateFile.ensureDirectory(directory, what: "data directory")
        let keyPath = (directory as NSString).appendingPathComponent(keyFileName)
        let certPath = (directory as NSString).appendingPathComponent(certificateFileName)
        if try PrivateFile.createIfMissing(keyPath, bytes: Array(P256.Signing.PrivateKey().pemRepresentation.utf8), mode: 0o600, what: "egress CA key") {
            logger.notice("egress CA key created", metadata: ["path": "\(keyPath)"])
        }
        let keyText = String(decoding: try PrivateFile.readPrivate(keyPath, what: "egress CA key"), as: UTF8.self)
        let key: P256.Signing.PrivateKey
        do { key = try P256.Signing.PrivateKey(pemRepresentation: keyText) } catch {
            throw SandboxError(.system, "egress CA key \(keyPath) is not a P-256 private key in PEM (\(error)); move it and \(certificateFileName) away to make a new CA (sandboxes then need the new certificate)")
        }
        if let existing = try? Certificate(pemEncoded: String(decoding: try PrivateFile.read(certPath, what: "egress CA certificate"), as: UTF8.self)),
           existing.publicKey == Certificate.PublicKey(key.publicKey),
           existing.notValidAfter > Date().addingTimeInterval(caRenewBefore)
        {
            return try EgressCA(certificate: existing, key: key, cacheSize: cacheSize, logger: logger)
        }
        let certificate = try issueCACertificate(key: key, hostname: hostname)
        try PrivateFile.replace(certPath, bytes: Array(try pem(certificate).utf8), mode: 0o644, what: "egress CA certificate")
        logger.notice("egress CA certificate issued", metadata: ["path": "\(certPath)", "subject": "\(certificate.subject)"])
        return try EgressCA(certificate: certificate, key: key, cacheSize: cacheSize, logger: logger)
    }

    /// A self-signed CA certificate for `key`: basicConstraints CA (critical), keyUsage
    /// keyCertSign + cRLSign (critical), a subject key identifier.
    static func issueCACertificate(key: P256.Signing.PrivateKey, hostname: String) throws(SandboxError) -> Certificate {
        let now = Date()
        let signingKey = Certificate.PrivateKey(key)
        do {
            let name = try DistinguishedName {
                OrganizationName("sandboxer")
                CommonName("sandboxer egress CA \(hostname)")
            }
            let extensions = try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: signingKey.publicKey)
            }
            return try Certificate(
                version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: signingKey.publicKey,
                notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(caLifetime),
                issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256, extensions: extensions, issuerPrivateKey: signingKey)
        } catch {
            throw SandboxError(.system, "issuing the egress CA certificate failed (\(error)); report this as a bug")
        }
    }

    /// The file a sandbox trusts: the host's CA bundle (when readable) with this CA appended.
    public func trustBundle(hostBundle: String = "/etc/ssl/certs/ca-certificates.crt") -> String {
        var bundle = FileManager.default.contents(atPath: hostBundle).map { String(decoding: $0, as: UTF8.self) } ?? ""
        if !bundle.isEmpty && !bundle.hasSuffix("\n") { bundle += "\n" }
        if bundle.isEmpty { logger.warning("host CA bundle not readable; the sandbox trusts only the egress CA", metadata: ["path": "\(hostBundle)"]) }
        return bundle + "# \(certificate.subject)\n" + caCertificatePEM + (caCertificatePEM.hasSuffix("\n") ? "" : "\n")
    }

    static func pem(_ certificate: Certificate) throws(SandboxError) -> String {
        do { return try certificate.serializeAsPEM().pemString } catch {
            throw SandboxError(.system, "encoding a certificate as PEM failed (\(error)); report this as a bug")
        }
    }
}
