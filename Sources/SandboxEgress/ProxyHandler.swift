import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
import SandboxCore

/// The HTTP side of the proxy, one per client connection:
/// - `.proxy` (127.0.0.1:3128, what `HTTP_PROXY` names): `CONNECT host:port` tunnels (or, for a
///   host with secrets, terminates TLS and forwards each request) and absolute-form `http://` requests;
/// - `.transparent(port)`: plain HTTP sent straight to a name the resolver answered, routed by `Host`;
/// - `.intercepted(host, port)`: requests inside TLS terminated for `host` (secrets swapped), sent
///   upstream over verified TLS.
/// A denied target gets `403` with a plain-text reason; every request is one upstream connection
/// (`Connection: close`).
final class ProxyHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    enum Mode {
        case proxy
        case transparent(port: UInt16)
        case intercepted(host: String, port: UInt16)
    }

    private enum State {
        case idle
        /// Waiting for the decision or the upstream; request parts are kept.
        case pending([HTTPServerRequestPart])
        /// A CONNECT was accepted: raw bytes are kept until the pipeline is switched.
        case switching([NIOAny])
        case forwarding(Channel)
        case done
    }

    let mode: Mode
    let session: EgressSession
    let decoderName: String
    private var state = State.idle

    init(mode: Mode, session: EgressSession, decoderName: String) {
        self.mode = mode
        self.session = session
        self.decoderName = decoderName
    }

    /// Adds the HTTP server codec and a handler in `mode` to `pipeline`.
    static func install(on pipeline: ChannelPipeline.SynchronousOperations, mode: Mode, session: EgressSession,
                        after: ChannelHandler? = nil) throws {
        let name = "egress-http-decoder-\(UInt32.random(in: 0...UInt32.max))"
        let handlers: [(ChannelHandler, String?)] = [
            (ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes)), name),
            (HTTPResponseEncoder(), name + "-encoder"),
            (ProxyHandler(mode: mode, session: session, decoderName: name), nil),
        ]
        var anchor = after
        for (handler, handlerName) in handlers {
            if let a = anchor {
                try pipeline.addHandler(handler, name: handlerName, position: .after(a))
            } else {
                try pipeline.addHandler(handler, name: handlerName)
            }
            anchor = handler
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch state {
        case .switching(var raw):
            raw.append(data)
            state = .switching(raw)
        case .done:
            return
        case .pending(var parts):
            parts.append(unwrapInboundIn(data))
            state = .pending(parts)
        case .forwarding(let upstream):
            switch unwrapInboundIn(data) {
            case .head: return
            case .body(let b): upstream.write(HTTPClientRequestPart.body(.byteBuffer(b)), promise: nil)
            case .end(let t): upstream.writeAndFlush(HTTPClientRequestPart.end(t), promise: nil)
            }
        case .idle:
            guard case .head(let head) = unwrapInboundIn(data) else { return }
            state = .pending([])
            start(context: context, head: head)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if case .forwarding(let upstream) = state { upstream.flush() }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        // A download paused by ``ResponseRelay`` goes on once the client drained what it has.
        if case .forwarding(let upstream) = state, context.channel.isWritable {
            upstream.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
        }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if case .idle = state {
            refuse(context: context, "bad request: \(error)")
        } else {
            context.close(promise: nil)
        }
    }

    // MARK: routing

    private func start(context: ChannelHandlerContext, head: HTTPRequestHead) {
        switch mode {
        case .proxy where head.method == .CONNECT:
            guard let (host, port) = Self.authority(head.uri, defaultPort: 443) else {
                return refuse(context: context, "CONNECT needs host:port, got '\(head.uri)'")
            }
            decide(context: context, host: host, port: port, via: "connect") { context, decision in
                self.connect(context: context, host: host, port: port, decision: decision)
            }
        case .proxy:
            guard let url = URLComponents(string: head.uri), let scheme = url.scheme?.lowercased(), let host = url.host, !host.isEmpty else {
                return refuse(context: context, "this is sandboxer's egress proxy: send absolute-form requests (GET http://host/path) or CONNECT host:port")
            }
            guard scheme == "http" else {
                return refuse(context: context, "use CONNECT for \(scheme):// through this proxy")
            }
            let port = UInt16(url.port ?? 80)
            var path = url.percentEncodedPath.isEmpty ? "/" : url.percentEncodedPath
            if let q = url.percentEncodedQuery { path += "?" + q }
            forward(context: context, head: head, host: host, port: port, path: path, tls: false, via: "proxy")
        case .transparent(let port):
            guard let hostHeader = head.headers.first(name: "host"), let (host, _) = Self.authority(hostHeader, defaultPort: port) else {
                return refuse(context: context, "no Host header: the egress proxy routes by Host")
            }
            forward(context: context, head: head, host: host, port: port, path: head.uri, tls: false, via: "transparent")
        case .intercepted(let host, let port):
            forward(context: context, head: head, host: host, port: port, path: head.uri, tls: true, via: "intercepted")
        }
    }

    /// Decides and calls `allowed` on the event loop; a denial is answered with 403 and recorded.
    private func decide(context: ChannelHandlerContext, host: String, port: UInt16, via: String,
                        _ allowed: @escaping (ChannelHandlerContext, (address: IPAddress, rule: String)) -> Void) {
        session.decide(host: host, port: port, on: context.eventLoop).assumeIsolated().whenComplete { result in
            switch result {
            case .success(.allow(let address, let rule)):
                allowed(context, (address, rule))
            case .success(.deny(let reason)):
                self.session.recordDenied(host: host, port: port, via: via, reason: reason)
                self.respond(context: context, status: .forbidden, "sandboxer egress: \(reason)\n")
            case .failure(let error):
                self.respond(context: context, status: .badGateway, "sandboxer egress: \(host):\(port) could not be resolved: \(error)\n")
            }
        }
    }

    // MARK: CONNECT

    private func connect(context: ChannelHandlerContext, host: String, port: UInt16, decision: (address: IPAddress, rule: String)) {
        let flow = EgressFlow(session: session, host: host, port: port, address: decision.address, rule: decision.rule,
                              via: session.intercepts(host, port: port) ? "connect+intercept" : "connect")
        if session.intercepts(host, port: port), let tls = session.interception {
            // Terminate TLS here: each request inside is forwarded (secrets swapped) over verified TLS.
            // The host's certificate comes from the cache or the blocking pool (never issued here).
            tls.serverContext(for: host, on: context.eventLoop).assumeIsolated().whenComplete { result in
                let server: NIOSSLContext
                switch result {
                case .success(let s): server = s
                case .failure(let error):
                    return self.respond(context: context, status: .badGateway, "sandboxer egress: no certificate for \(host): \(error)\n")
                }
                // On the next tick: the decision may have come back inside the read of the CONNECT
                // head, before the decoder handed over its end (only raw bytes may follow the switch).
                context.eventLoop.assumeIsolated().execute {
                    self.switchToRaw(context: context) { pipeline in
                        try pipeline.addHandler(NIOSSLServerHandler(context: server))
                        try ProxyHandler.install(on: pipeline, mode: .intercepted(host: host, port: port), session: self.session)
                    }
                }
            }
            return
        }
        let client = context.channel
        let (local, peer) = GlueHandler.pair(first: { flow.sent($0) }, second: { flow.received($0) })
        flow.connect(on: context.eventLoop, tls: nil) { _ in }.assumeIsolated().whenComplete { result in
            switch result {
            case .success(let upstream):
                guard flow.track(client: client, upstream: upstream) else {
                    return self.respond(context: context, status: .forbidden, "sandboxer egress: \(flow.refusal)\n")
                }
                do { try upstream.pipeline.syncOperations.addHandler(peer) } catch { upstream.close(promise: nil) }
                self.switchToRaw(context: context) { pipeline in try pipeline.addHandler(local) }
            case .failure(let error):
                flow.finish()
                self.respond(context: context, status: .badGateway, "sandboxer egress: \(host):\(port) refused or unreachable: \(error)\n")
            }
        }
    }

    /// Answers 200 to a CONNECT, removes the HTTP codec, adds what `configure` adds after this
    /// handler, then leaves, handing on any bytes that came early.
    private func switchToRaw(context: ChannelHandlerContext, _ configure: (ChannelPipeline.SynchronousOperations) throws -> Void) {
        state = .switching([])
        let pipeline = context.pipeline.syncOperations
        // The 200 goes out as raw bytes, past the response encoder: a 2xx to CONNECT has no body
        // framing (the encoder would add `transfer-encoding: chunked`, RFC 9110 §9.3.6 forbids it).
        context.pipeline.removeHandler(name: decoderName + "-encoder", promise: nil)
        context.writeAndFlush(NIOAny(ByteBuffer(string: "HTTP/1.1 200 Connection Established\r\n\r\n")), promise: nil)
        context.pipeline.removeHandler(name: decoderName, promise: nil)
        do {
            try configure(pipeline)
        } catch {
            context.close(promise: nil)
            return
        }
        context.pipeline.removeHandler(context: context, promise: nil)
    }

    func removeHandler(context: ChannelHandlerContext, removalToken: ChannelHandlerContext.RemovalToken) {
        if case .switching(let raw) = state {
            state = .done
            for d in raw { context.fireChannelRead(d) }
            if !raw.isEmpty { context.fireChannelReadComplete() }
        }
        context.leavePipeline(removalToken: removalToken)
    }

    // MARK: forwarding

    private func forward(context: ChannelHandlerContext, head: HTTPRequestHead, host: String, port: UInt16, path: String, tls: Bool, via: String) {
        decide(context: context, host: host, port: port, via: via) { context, decision in
            let flow = EgressFlow(session: self.session, host: host, port: port, address: decision.address, rule: decision.rule, via: via)
            var out = HTTPRequestHead(version: .http1_1, method: head.method, uri: path, headers: head.headers)
            for h in ["proxy-connection", "proxy-authorization", "connection", "keep-alive"] { out.headers.remove(name: h) }
            out.headers.replaceOrAdd(name: "connection", value: "close")
            if !out.headers.contains(name: "host") { out.headers.add(name: "host", value: port == (tls ? 443 : 80) ? host : "\(host):\(port)") }
            let secrets = SecretRewriter.rewrite(&out.headers, host: host, port: port, tls: tls, session: self.session)
            let client = context.channel
            let upstreamTLS = tls ? self.session.interception?.upstreamContext : nil
            if tls && upstreamTLS == nil {
                return self.respond(context: context, status: .badGateway, "sandboxer egress: no TLS context for \(host)\n")
            }
            flow.connect(on: context.eventLoop, tls: upstreamTLS) { upstream in
                try upstream.pipeline.syncOperations.addHandler(HTTPRequestEncoder())
                try upstream.pipeline.syncOperations.addHandler(ResponseRelay(client: client, flow: flow))
            }.assumeIsolated().whenComplete { result in
                switch result {
                case .success(let upstream):
                    guard flow.track(client: client, upstream: upstream) else {
                        return self.respond(context: context, status: .forbidden, "sandboxer egress: \(flow.refusal)\n")
                    }
                    // The response goes back byte for byte (the request said `Connection: close`,
                    // so it ends with the upstream's connection): no response encoder any more.
                    context.pipeline.removeHandler(name: self.decoderName + "-encoder", promise: nil)
                    let headWritten = upstream.eventLoop.makePromise(of: Void.self)
                    headWritten.futureResult.whenSuccess {
                        SecretRewriter.record(secrets, host: host, session: self.session, correlation: flow.correlation)
                    }
                    upstream.write(HTTPClientRequestPart.head(out), promise: headWritten)
                    flow.sent(Self.headBytes(out))
                    guard case .pending(let parts) = self.state else { return }
                    self.state = .forwarding(upstream)
                    for p in parts {
                        switch p {
                        case .head: break
                        case .body(let b):
                            flow.sent(b.readableBytes)
                            upstream.write(HTTPClientRequestPart.body(.byteBuffer(b)), promise: nil)
                        case .end(let t): upstream.write(HTTPClientRequestPart.end(t), promise: nil)
                        }
                    }
                    upstream.flush()
                case .failure(let error):
                    flow.finish()
                    self.respond(context: context, status: .badGateway, "sandboxer egress: \(host):\(port) refused or unreachable: \(error)\n")
                }
            }
        }
    }

    // MARK: helpers

    /// How this handler's decisions are recorded (`via`).
    private var via: String {
        switch mode {
        case .proxy: return "proxy"
        case .transparent: return "transparent"
        case .intercepted: return "intercepted"
        }
    }

    /// Answers a malformed or unroutable request with 400 and records it (`egress.deny`, host
    /// `(malformed request)`), so a probe of the proxy leaves a trace like any other denial.
    private func refuse(context: ChannelHandlerContext, _ reason: String) {
        session.recordDenied(host: "(malformed request)", port: 0, via: via, reason: reason)
        respond(context: context, status: .badRequest, reason + "\n")
    }

    private func respond(context: ChannelHandlerContext, status: HTTPResponseStatus, _ text: String) {
        state = .done
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "text/plain; charset=utf-8")
        headers.add(name: "content-length", value: String(text.utf8.count))
        headers.add(name: "connection", value: "close")
        headers.add(name: "x-sandboxer-egress", value: status == .forbidden ? "denied" : "error")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }

    /// The size of `head` on the wire (request line, header lines, the blank line): what a
    /// request's `bytes_out` counts before its body.
    static func headBytes(_ head: HTTPRequestHead) -> Int {
        var n = head.method.rawValue.utf8.count + 1 + head.uri.utf8.count + 1 + "HTTP/1.1\r\n".utf8.count
        for (name, value) in head.headers { n += name.utf8.count + 2 + value.utf8.count + 2 }
        return n + 2
    }

    /// `host:port`, `[v6]:port` or `host` (then `defaultPort`).
    static func authority(_ text: String, defaultPort: UInt16) -> (String, UInt16)? {
        var host = text
        var port = defaultPort
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            if rest.hasPrefix(":") { guard let p = UInt16(rest.dropFirst()) else { return nil }; port = p }
        } else if let colon = text.lastIndex(of: ":") {
            host = String(text[..<colon])
            guard let p = UInt16(text[text.index(after: colon)...]) else { return nil }
            port = p
        }
        guard !host.isEmpty, port > 0 else { return nil }
        return (host, port)
    }
}

/// Relays an upstream's response to the client byte for byte (it ends when the upstream closes,
/// as the forwarded request asked), with back-pressure: the upstream stops reading while the
/// client cannot take more.
final class ResponseRelay: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    let client: Channel
    let flow: EgressFlow

    init(client: Channel, flow: EgressFlow) {
        self.client = client
        self.flow = flow
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        flow.received(buffer.readableBytes)
        client.write(buffer, promise: nil)
        if !client.isWritable {
            // Stop reading first; the client's ProxyHandler turns reading back on when it becomes
            // writable — unless the flush below already made it so (same event loop, so no race).
            let upstream = context.channel
            upstream.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
            client.flush()
            if client.isWritable { upstream.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in } }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) { client.flush() }

    func channelInactive(context: ChannelHandlerContext) {
        let client = self.client
        client.writeAndFlush(ByteBuffer()).whenComplete { _ in client.close(promise: nil) }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
