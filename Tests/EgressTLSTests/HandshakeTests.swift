import EgressTLS
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import SandboxCore
import Testing

/// Real TLS handshakes on 127.0.0.1: a NIO server with the CA's context for `api.test`, and clients
/// that trust only the CA, only the system roots, or expect another name.
@Suite("EgressCA: real TLS handshakes against the proxy's certificates")
struct HandshakeTests {
    /// Fulfils `done` when the handshake completes and fails it on the first error.
    final class HandshakeWatcher: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let done: EventLoopPromise<String?>
        init(done: EventLoopPromise<String?>) { self.done = done }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if case TLSUserEvent.handshakeCompleted(let alpn) = event { done.succeed(alpn) }
            context.fireUserInboundEventTriggered(event)
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            done.fail(error)
            context.close(promise: nil)
        }

        func channelInactive(context: ChannelHandlerContext) {
            done.fail(ChannelError.ioOnClosedChannel)
        }
    }

    /// Serves TLS with `server` on an ephemeral loopback port, connects a client with `client`
    /// naming `hostname`, and returns the negotiated ALPN (or throws the handshake's error).
    static func handshake(server: NIOSSLContext, client: NIOSSLContext, hostname: String) async throws -> String? {
        // The shared group: a private one could not shut down while a refused peer still closes.
        let group = MultiThreadedEventLoopGroup.singleton
        let listener = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: server)) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        do {
            let done = group.next().makePromise(of: String?.self)
            let channel = try await ClientBootstrap(group: group)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: client, serverHostname: hostname))
                        try channel.pipeline.syncOperations.addHandler(HandshakeWatcher(done: done))
                    }
                }
                .connect(to: listener.localAddress!).get()
            let result: Result<String?, any Error>
            do { result = .success(try await done.futureResult.get()) } catch { result = .failure(error) }
            try? await channel.close().get()
            try await listener.close().get()
            return try result.get()
        } catch {
            try? await listener.close().get()
            throw error
        }
    }

    static func client(trusting roots: NIOSSLTrustRoots) throws -> NIOSSLContext {
        var config = TLSConfiguration.makeClientConfiguration()
        config.trustRoots = roots
        config.applicationProtocols = ["h2", "http/1.1"]
        return try NIOSSLContext(configuration: config)
    }

    @Test("a client trusting only the CA completes a handshake for api.test, with ALPN http/1.1")
    func trustedByCA() async throws {
        try await withAsyncDirectory { dir in
            let ca = try EgressCA.loadOrCreate(directory: dir)
            let onlyCA = try Self.client(trusting: .certificates([NIOSSLCertificate(bytes: Array(ca.caCertificatePEM.utf8), format: .pem)]))
            let alpn = try await Self.handshake(server: try ca.serverContext(for: "api.test"), client: onlyCA, hostname: "api.test")
            #expect(alpn == "http/1.1")
        }
    }

    @Test("a client trusting only the system roots refuses the proxy's certificate")
    func notTrustedBySystemRoots() async throws {
        try await withAsyncDirectory { dir in
            let ca = try EgressCA.loadOrCreate(directory: dir)
            await #expect(throws: NIOSSLError.self) {
                _ = try await Self.handshake(server: try ca.serverContext(for: "api.test"), client: try Self.client(trusting: .default), hostname: "api.test")
            }
        }
    }

    @Test("a client expecting another name refuses the certificate for api.test")
    func wrongName() async throws {
        try await withAsyncDirectory { dir in
            let ca = try EgressCA.loadOrCreate(directory: dir)
            let onlyCA = try Self.client(trusting: .certificates([NIOSSLCertificate(bytes: Array(ca.caCertificatePEM.utf8), format: .pem)]))
            await #expect(throws: (any Error).self) {
                _ = try await Self.handshake(server: try ca.serverContext(for: "api.test"), client: onlyCA, hostname: "other.test")
            }
        }
    }

    @Test("the upstream client context verifies against an operator CA file: our own CA's leaf passes, a stranger's fails")
    func upstreamContext() async throws {
        try await withAsyncDirectory { dir in
            let upstreamCA = try EgressCA.loadOrCreate(directory: dir + "/upstream")
            let stranger = try EgressCA.loadOrCreate(directory: dir + "/stranger")
            let caFile = dir + "/upstream/egress-ca.pem"
            let client = try EgressCA.upstreamClientContext(extraCAFile: caFile)
            #expect(try await Self.handshake(server: try upstreamCA.serverContext(for: "upstream.test"), client: client, hostname: "upstream.test") == "http/1.1")
            await #expect(throws: (any Error).self) {
                _ = try await Self.handshake(server: try stranger.serverContext(for: "upstream.test"), client: client, hostname: "upstream.test")
            }
            #expect { try EgressCA.upstreamClientContext(extraCAFile: dir + "/missing.pem") } throws: { e in
                (e as? SandboxError)?.code == .invalidRequest && (e as? SandboxError)?.message.contains("missing.pem") == true
            }
            _ = try EgressCA.upstreamClientContext(extraCAFile: nil)
        }
    }
}

/// A fresh directory for one async test, removed after it.
func withAsyncDirectory(_ body: (String) async throws -> Void) async throws {
    let dir = NSTemporaryDirectory() + "sandboxer-egress-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try await body(dir)
}
