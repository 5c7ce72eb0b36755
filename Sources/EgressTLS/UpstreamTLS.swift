import Foundation
import NIOSSL
import SandboxCore

extension EgressCA {
    /// The TLS client context the proxy uses towards the real host after terminating a sandbox's
    /// TLS: the host's default trust roots plus, when given, the operator's CA file (PEM; for
    /// test upstreams), ALPN `http/1.1`, TLS 1.2 or later, full verification. Hostname
    /// verification needs the host as `serverHostname` of each `NIOSSLClientHandler`.
    public static func upstreamClientContext(extraCAFile: String?) throws(SandboxError) -> NIOSSLContext {
        var config = TLSConfiguration.makeClientConfiguration()
        config.trustRoots = .default
        config.certificateVerification = .fullVerification
        config.applicationProtocols = ["http/1.1"]
        config.minimumTLSVersion = .tlsv12
        if let extraCAFile {
            let certificates: [NIOSSLCertificate]
            do { certificates = try NIOSSLCertificate.fromPEMFile(extraCAFile) } catch {
                throw SandboxError(.invalidRequest, "upstream CA file \(extraCAFile) cannot be read as PEM certificates (\(error)); give a readable PEM file")
            }
            guard !certificates.isEmpty else {
                throw SandboxError(.invalidRequest, "upstream CA file \(extraCAFile) holds no certificate; give a PEM file with -----BEGIN CERTIFICATE-----")
            }
            config.additionalTrustRoots = [.certificates(certificates)]
        }
        do { return try NIOSSLContext(configuration: config) } catch {
            throw SandboxError(.hostUnsupported, "making the upstream TLS client context failed (\(error)); check the host's CA bundle (ca-certificates)")
        }
    }
}
