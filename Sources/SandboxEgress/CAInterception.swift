import EgressTLS
import NIOSSL
import SandboxCore

/// TLS interception with the server's own CA (``EgressCA``): a certificate per intercepted host,
/// and upstreams verified against the host's trust store plus an optional operator-given CA.
public struct CAInterception: InterceptionTLS {
    public let ca: EgressCA
    public let upstreamContext: NIOSSLContext

    /// Loads (or makes) the CA in `directory`; `upstreamCA` is an extra PEM file upstreams may chain to.
    public init(directory: String, upstreamCA: String?) throws(SandboxError) {
        ca = try EgressCA.loadOrCreate(directory: directory)
        upstreamContext = try EgressCA.upstreamClientContext(extraCAFile: upstreamCA)
    }

    public var caCertificatePEM: String { ca.caCertificatePEM }

    public func serverContext(for host: String) throws -> NIOSSLContext { try ca.serverContext(for: host) }

    public func cachedServerContext(for host: String) -> NIOSSLContext? { ca.cachedServerContext(for: host) }
}
