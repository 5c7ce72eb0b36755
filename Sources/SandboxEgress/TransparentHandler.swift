import NIOCore
import NIOSSL
import NIOTLS
import SandboxCore

/// First handler on a transparent listener (the address the resolver hands out, ports 80, 443 and
/// those of port-specific rules): TLS is routed by its SNI name — tunnelled untouched, or
/// terminated when the host has secrets —, anything else is HTTP routed by `Host`.
final class TransparentSniffer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    let port: UInt16
    let session: EgressSession

    init(port: UInt16, session: EgressSession) {
        self.port = port
        self.session = session
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        guard let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else { return }
        let pipeline = context.pipeline.syncOperations
        let (port, session) = (self.port, self.session)
        do {
            if first == 0x16 {
                let client = context.channel
                try pipeline.addHandler(ByteToMessageHandler(SNIHandler { result in
                    Self.routeTLS(client: client, result: result, port: port, session: session)
                }), position: .after(self))
            } else {
                try ProxyHandler.install(on: pipeline, mode: .transparent(port: port), session: session, after: self)
            }
        } catch {
            context.close(promise: nil)
            return
        }
        // Hand the first bytes to the handlers just added, and leave.
        context.fireChannelRead(data)
        context.pipeline.removeHandler(context: context, promise: nil)
    }

    /// Decides the SNI name; on allow either glues the client to the upstream or terminates TLS.
    static func routeTLS(client: Channel, result: SNIResult, port: UInt16, session: EgressSession) -> EventLoopFuture<Void> {
        let loop = client.eventLoop
        guard case .hostname(let host) = result else {
            session.recordDenied(host: "(no SNI)", port: port, via: "transparent", reason: "TLS without a server name cannot be routed")
            client.close(promise: nil)
            return loop.makeSucceededVoidFuture()
        }
        return session.decide(host: host, port: port, on: loop).flatMap { decision -> EventLoopFuture<Void> in
            guard case .allow(let address, let rule) = decision else {
                if case .deny(let reason) = decision { session.recordDenied(host: host, port: port, via: "transparent", reason: reason) }
                client.close(promise: nil)
                return loop.makeSucceededVoidFuture()
            }
            let pipeline = client.pipeline
            if session.intercepts(host, port: port), let tls = session.interception {
                return tls.serverContext(for: host, on: loop).flatMapThrowing { server in
                    try pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: server))
                    try ProxyHandler.install(on: pipeline.syncOperations, mode: .intercepted(host: host, port: port), session: session)
                }
            }
            let flow = EgressFlow(session: session, host: host, port: port, address: address, rule: rule, via: "transparent")
            let (local, peer) = GlueHandler.pair(first: { flow.sent($0) }, second: { flow.received($0) })
            return flow.connect(on: loop, tls: nil) { upstream in
                try upstream.pipeline.syncOperations.addHandler(peer)
            }.flatMapThrowing { upstream in
                guard flow.track(client: client, upstream: upstream) else {
                    client.close(promise: nil)
                    return
                }
                try pipeline.syncOperations.addHandler(local)
            }.flatMapError { error in
                flow.finish()
                client.close(promise: nil)
                return loop.makeSucceededVoidFuture()
            }
        }
    }
}
