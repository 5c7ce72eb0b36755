import Foundation
import Synchronization
import NIOCore
import NIOSSL
import NIOPosix
import SandboxCore
import SandboxLinux

/// The TLS side of interception: the server's CA, a certificate per intercepted host, and the
/// client context that verifies upstreams (host trust store plus an operator-given CA).
public protocol InterceptionTLS: Sendable {
    /// The CA certificate (PEM) sandboxes trust.
    var caCertificatePEM: String { get }
    /// A TLS server context presenting a certificate for `host`, signed by the CA. May generate a
    /// key and sign (blocking): the proxy calls it through ``serverContext(for:on:)``.
    func serverContext(for host: String) throws -> NIOSSLContext
    /// The context for `host` when it is ready without blocking (cached), else nil.
    func cachedServerContext(for host: String) -> NIOSSLContext?
    /// The context for connections to upstreams (full verification).
    var upstreamContext: NIOSSLContext { get }
}

extension InterceptionTLS {
    public func cachedServerContext(for host: String) -> NIOSSLContext? { nil }

    /// The server context for `host`, completed on `loop`: from the cache at once, or issued on
    /// the blocking pool (key generation and signing never run on an event loop).
    func serverContext(for host: String, on loop: any EventLoop) -> EventLoopFuture<NIOSSLContext> {
        if let cached = cachedServerContext(for: host) { return loop.makeSucceededFuture(cached) }
        let promise = loop.makePromise(of: NIOSSLContext.self)
        BlockingPool.shared.submit { promise.completeWith(Result { try self.serverContext(for: host) }) }
        return promise.futureResult
    }
}

/// One allowed connection to an upstream: counts bytes each way and, when it ends, writes one
/// `egress.allow` entry (host, port, address, rule, via, bytes, duration) to the audit trail.
final class EgressFlow: Sendable {
    let session: EgressSession
    let host: String
    let port: UInt16
    let address: IPAddress
    let rule: String
    let via: String
    let correlation: String
    private let started = NIODeadline.now()
    private let counters = Mutex((out: Int64(0), in: Int64(0), id: Int?.none, done: false))
    private static let sequence = Mutex(0)

    init(session: EgressSession, host: String, port: UInt16, address: IPAddress, rule: String, via: String) {
        self.session = session
        self.host = host
        self.port = port
        self.address = address
        self.rule = rule
        self.via = via
        correlation = "egress-" + String(Self.sequence.withLock { $0 += 1; return $0 })
    }

    func sent(_ n: Int) {
        counters.withLock { $0.out += Int64(n) }
        session.bytesOut.add(Int64(n), ordering: .relaxed)
    }
    func received(_ n: Int) {
        counters.withLock { $0.in += Int64(n) }
        session.bytesIn.add(Int64(n), ordering: .relaxed)
    }

    /// Opens the upstream connection to the approved address (never a new lookup). `tls`: the
    /// upstream speaks TLS and is verified for `host`.
    func connect(on loop: EventLoop, tls: NIOSSLContext?, _ configure: @escaping @Sendable (Channel) throws -> Void) -> EventLoopFuture<Channel> {
        let address: SocketAddress
        do { address = try self.address.socketAddress(port: port) } catch { return loop.makeFailedFuture(error) }
        let serverName = IPAddress(host) == nil ? host : nil
        return ClientBootstrap(group: loop)
            .connectTimeout(.seconds(10))
            .channelOption(ChannelOptions.recvAllocator, value: EgressHub.readAllocator)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: serverName)) }
                    try configure(channel)
                }
            }
            .connect(to: address)
    }

    /// Why ``track(client:upstream:)`` refused a connection.
    var refusal: String { "\(host):\(port) denied: the sandbox's network policy changed while the connection was being made" }

    /// Tracks the pair (closed together when the policy changes) and finishes when `upstream` closes.
    /// False: the policy in force now refuses it (recorded; `upstream` is closed, the caller
    /// answers the client with ``refusal``).
    func track(client: Channel, upstream: Channel) -> Bool {
        let id = session.register(host: host, port: port, address: address, channels: [client, upstream])
        guard let id else {
            counters.withLock { $0.done = true }
            session.recordDenied(host: host, port: port, via: via, reason: refusal)
            upstream.close(promise: nil)
            return false
        }
        counters.withLock { $0.id = id }
        upstream.closeFuture.whenComplete { _ in self.finish() }
        client.closeFuture.whenComplete { _ in upstream.close(promise: nil) }
        return true
    }

    func finish() {
        let snapshot = counters.withLock { (c: inout (out: Int64, in: Int64, id: Int?, done: Bool)) -> (Int64, Int64, Int?)? in
            guard !c.done else { return nil }
            c.done = true
            return (c.out, c.in, c.id)
        }
        guard let (out, inn, id) = snapshot else { return }
        if let id { session.unregister(id) }
        let ms = (NIODeadline.now() - started).nanoseconds / 1_000_000
        session.record(.egressAllow, correlation: correlation, [
            "host": .string(host), "port": .int(Int64(port)), "address": .string(address.description), "rule": .string(rule),
            "via": .string(via), "bytes_out": .int(out), "bytes_in": .int(inn), "duration_ms": .int(ms),
        ])
    }
}
