import Crypto
import Foundation
import NIOSSL
import SandboxCore
import SwiftASN1
import X509

/// TLS server contexts for single hosts, least recently used dropped past `capacity`.
struct LeafCache: Sendable {
    let capacity: Int
    private var entries: [String: (context: NIOSSLContext, renewAt: Date)] = [:]
    /// Hosts, least recently used first.
    private var order: [String] = []

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    var count: Int { entries.count }

    /// The cached context for `host` unless it is due for renewal; marks it used.
    mutating func get(_ host: String, now: Date) -> NIOSSLContext? {
        guard let entry = entries[host], entry.renewAt > now else { return nil }
        touch(host)
        return entry.context
    }

    mutating func put(_ host: String, _ context: NIOSSLContext, renewAt: Date) {
        entries[host] = (context, renewAt)
        touch(host)
        while order.count > capacity { entries[order.removeFirst()] = nil }
    }

    private mutating func touch(_ host: String) {
        order.removeAll { $0 == host }
        order.append(host)
    }
}

extension EgressCA {
    /// How long a leaf certificate is valid (and how far back it starts, for clock skew).
    static let leafLifetime: TimeInterval = 7 * 86_400
    static let leafBackdate: TimeInterval = 3600

    /// The cached server context for `host`, if one is and is not due for renewal (never issues:
    /// cheap enough for an event loop).
    public func cachedServerContext(for host: String) -> NIOSSLContext? {
        guard let name = try? Self.leafName(host) else { return nil }
        let now = Date()
        return leaves.withLock { $0.get(name, now: now) }
    }

    /// A TLS server context presenting a certificate for `host` (a DNS name, or an IP literal)
    /// issued by this CA, ALPN `http/1.1` only, TLS 1.2 or later. Issued on first use and cached
    /// (bounded, least recently used dropped; renewed a day before the certificate ends).
    /// Issuing generates a key and signs: it blocks for a while, so never call it on an event
    /// loop (the egress proxy goes through `InterceptionTLS.serverContext(for:on:)`).
    public func serverContext(for host: String) throws(SandboxError) -> NIOSSLContext {
        let name = try Self.leafName(host)
        let now = Date()
        if let cached = leaves.withLock({ $0.get(name, now: now) }) { return cached }
        let (leaf, leafKey) = try issueLeaf(for: name, now: now)
        let context: NIOSSLContext
        do {
            var config = TLSConfiguration.makeServerConfiguration(
                certificateChain: [.certificate(try NIOSSLCertificate(bytes: Array(try Self.pem(leaf).utf8), format: .pem))],
                privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(leafKey.pemRepresentation.utf8), format: .pem)))
            config.applicationProtocols = ["http/1.1"]
            config.minimumTLSVersion = .tlsv12
            context = try NIOSSLContext(configuration: config)
        } catch let error as SandboxError {
            throw error
        } catch {
            throw SandboxError(.system, "making the TLS server context for \(name) failed (\(error)); report this as a bug")
        }
        leaves.withLock { $0.put(name, context, renewAt: leaf.notValidAfter.addingTimeInterval(-86_400)) }
        logger.debug("egress leaf certificate issued", metadata: ["host": "\(name)"])
        return context
    }

    /// A certificate for one host: SAN dNSName (or iPAddress), EKU serverAuth, not a CA, signed
    /// by this CA; a fresh P-256 key each time.
    func issueLeaf(for host: String, now: Date) throws(SandboxError) -> (Certificate, P256.Signing.PrivateKey) {
        let leafKey = P256.Signing.PrivateKey()
        let publicKey = Certificate.PublicKey(leafKey.publicKey)
        let san: GeneralName = IPAddress(host).map { .ipAddress(ASN1OctetString(contentBytes: ArraySlice($0.bytes))) } ?? .dnsName(host)
        let caKeyID = (try? certificate.extensions.subjectKeyIdentifier)?.keyIdentifier
        do {
            let subject = try DistinguishedName { CommonName(host) }
            let extensions = try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames([san])
                SubjectKeyIdentifier(hash: publicKey)
                AuthorityKeyIdentifier(keyIdentifier: caKeyID)
            }
            let leaf = try Certificate(
                version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: publicKey,
                notValidBefore: now.addingTimeInterval(-Self.leafBackdate), notValidAfter: now.addingTimeInterval(Self.leafLifetime),
                issuer: certificate.subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256, extensions: extensions,
                issuerPrivateKey: Certificate.PrivateKey(key))
            return (leaf, leafKey)
        } catch {
            throw SandboxError(.system, "issuing a certificate for \(host) failed (\(error)); report this as a bug")
        }
    }

    /// The host as certificates name it: lower case, no trailing dot; a name or an address, not a
    /// wildcard, port or CIDR.
    static func leafName(_ host: String) throws(SandboxError) -> String {
        var name = host.lowercased()
        if name.hasPrefix("[") && name.hasSuffix("]") { name = String(name.dropFirst().dropLast()) }
        if let ip = IPAddress(name) { return ip.description }
        if name.hasSuffix(".") { name.removeLast() }
        guard !name.contains("*"), !name.contains(":"), let rule = try? AllowRule(name), case .name(let normalized) = rule.target else {
            throw SandboxError(.invalidRequest, "egress TLS: '\(host)' is not a host name or IP address; the proxy terminates TLS only for named hosts")
        }
        return normalized
    }
}
