@testable import EgressTLS
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import SandboxCore
import Testing
import X509

@Suite("EgressCA: the per-server CA and the certificates the egress proxy presents")
struct EgressCATests {
    @Test("the CA is made once (key 0600, certificate 0644) and reused by every later load")
    func createdAndReused() throws {
        try withDirectory { dir in
            let first = try EgressCA.loadOrCreate(directory: dir, hostname: "node-1")
            #expect(try mode(dir + "/egress-ca-key.pem") == 0o600)
            #expect(try mode(dir + "/egress-ca.pem") == 0o644)
            #expect(try String(contentsOfFile: dir + "/egress-ca.pem", encoding: .utf8) == first.caCertificatePEM)
            let second = try EgressCA.loadOrCreate(directory: dir, hostname: "node-1")
            #expect(second.caCertificatePEM == first.caCertificatePEM)

            let ca = try Certificate(pemEncoded: first.caCertificatePEM)
            #expect(ca.subject.description.contains("CN=sandboxer egress CA node-1"))
            #expect(ca.issuer == ca.subject)
            #expect(try ca.extensions.basicConstraints == .isCertificateAuthority(maxPathLength: 0))
            #expect(try ca.extensions.keyUsage == KeyUsage(keyCertSign: true, cRLSign: true))
            let years = ca.notValidAfter.timeIntervalSince(ca.notValidBefore) / (365 * 86_400)
            #expect(years > 9.9 && years < 10.1)
        }
    }

    @Test("a lost certificate is issued anew from the kept key; a key file others can read is refused")
    func certificateReissuedKeyGuarded() throws {
        try withDirectory { dir in
            let first = try EgressCA.loadOrCreate(directory: dir)
            try FileManager.default.removeItem(atPath: dir + "/egress-ca.pem")
            let second = try EgressCA.loadOrCreate(directory: dir)
            #expect(try Certificate(pemEncoded: second.caCertificatePEM).publicKey == (try Certificate(pemEncoded: first.caCertificatePEM).publicKey))
            chmod(dir + "/egress-ca-key.pem", 0o644)
            #expect { try EgressCA.loadOrCreate(directory: dir) } throws: { ($0 as? SandboxError)?.message.contains("chmod 600") == true }
        }
    }

    @Test("a leaf for api.test: SAN dNSName, serverAuth, not a CA, about a week, and it is cached")
    func leafShape() throws {
        try withDirectory { dir in
            let ca = try EgressCA.loadOrCreate(directory: dir)
            let (leaf, _) = try ca.issueLeaf(for: "api.test", now: Date())
            #expect(try leaf.extensions.subjectAlternativeNames == SubjectAlternativeNames([.dnsName("api.test")]))
            #expect(try leaf.extensions.extendedKeyUsage == ExtendedKeyUsage([.serverAuth]))
            #expect(try leaf.extensions.basicConstraints == .notCertificateAuthority)
            #expect(leaf.issuer == (try Certificate(pemEncoded: ca.caCertificatePEM)).subject)
            let days = leaf.notValidAfter.timeIntervalSince(leaf.notValidBefore) / 86_400
            #expect(days > 7 && days < 7.1 && leaf.notValidBefore < Date().addingTimeInterval(-3000))
            let (ipLeaf, _) = try ca.issueLeaf(for: "127.0.0.1", now: Date())
            #expect(try ipLeaf.extensions.subjectAlternativeNames == SubjectAlternativeNames([.ipAddress(.init(contentBytes: [127, 0, 0, 1]))]))

            #expect(try ca.serverContext(for: "API.test.") === (try ca.serverContext(for: "api.test")), "one context per host, cached")
            for bad in ["*.test", "a b", "api.test:443", "10.0.0.0/8", ""] {
                #expect(throws: SandboxError.self, "\(bad)") { try ca.serverContext(for: bad) }
            }
        }
    }

    @Test("the leaf cache keeps the most recently used hosts up to its bound")
    func cacheBound() throws {
        try withDirectory { dir in
            let ca = try EgressCA.loadOrCreate(directory: dir, cacheSize: 2)
            let a = try ca.serverContext(for: "a.test")
            _ = try ca.serverContext(for: "b.test")
            #expect(try ca.serverContext(for: "a.test") === a)
            _ = try ca.serverContext(for: "c.test")  // drops b, the least recently used
            #expect(try ca.serverContext(for: "a.test") === a)
            #expect(ca.leaves.withLock { $0.count } == 2)
        }
    }

    @Test("the sandbox trust bundle is the host bundle with the CA appended")
    func trustBundle() throws {
        try withDirectory { dir in
            let ca = try EgressCA.loadOrCreate(directory: dir)
            try "HOST-BUNDLE".write(toFile: dir + "/host.crt", atomically: true, encoding: .utf8)
            let bundle = ca.trustBundle(hostBundle: dir + "/host.crt")
            #expect(bundle.hasPrefix("HOST-BUNDLE\n") && bundle.hasSuffix(ca.caCertificatePEM.hasSuffix("\n") ? ca.caCertificatePEM : ca.caCertificatePEM + "\n"))
            #expect(ca.trustBundle(hostBundle: dir + "/missing.crt").contains(ca.caCertificatePEM))
        }
    }

    func mode(_ path: String) throws -> mode_t {
        var st = stat()
        try #require(stat(path, &st) == 0)
        return st.st_mode & 0o777
    }
}

/// A fresh directory for one test, removed after it.
func withDirectory<T>(_ body: (String) throws -> T) throws -> T {
    let dir = NSTemporaryDirectory() + "sandboxer-egress-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: dir) }
    return try body(dir)
}
