import Foundation
import NIOCore
import Testing
@testable import SandboxCore
@testable import SandboxEgress

/// What the proxy answers and records at its edges: a CONNECT's 200, a request's bytes, malformed requests.
@Suite("Egress proxy edges", .serialized)
struct ProxyEdgeTests {
    func served(_ sink: CollectingSink) async throws -> (LoopbackProxy, LoopbackUpstream) {
        let session = try makeSession(.init(mode: .allowlist, allow: ["up.test"]), sink: sink, map: ["up.test": IPAddress(v4: 127, 0, 0, 1)])
        return (try await LoopbackProxy(session: session), try LoopbackUpstream())
    }

    @Test("a CONNECT's 200 has no body framing (no transfer-encoding), and the tunnel carries what follows")
    func connectReply() async throws {
        let sink = CollectingSink()
        let (proxy, upstream) = try await served(sink)
        defer { upstream.stop() }
        let (head, rest) = LoopbackProxy.tunnel(port: proxy.proxyPort, "CONNECT up.test:\(upstream.port) HTTP/1.1\r\nHost: up.test:\(upstream.port)\r\n\r\n",
                                                then: "GET / HTTP/1.1\r\nHost: up.test\r\n\r\n")
        await proxy.stop()
        #expect(head == "HTTP/1.1 200 Connection Established\r\n\r\n", "\(head)")
        #expect(rest.hasSuffix("hello"), "\(rest)")
    }

    @Test("a forwarded request's bytes_out counts its head")
    func headBytes() async throws {
        let sink = CollectingSink()
        let (proxy, upstream) = try await served(sink)
        defer { upstream.stop() }
        let request = "GET http://up.test:\(upstream.port)/x HTTP/1.1\r\nHost: up.test:\(upstream.port)\r\n\r\n"
        let reply = proxy.viaProxy(request)
        await proxy.stop()
        #expect(reply.hasSuffix("hello"), "\(reply)")
        let allow = try #require(sink.events.first { $0.kind == .egressAllow })
        guard case .int(let out) = allow.detail["bytes_out"] else { Issue.record("no bytes_out"); return }
        // "GET /x HTTP/1.1", Host and the proxy's own `connection: close`.
        #expect(out >= Int64("GET /x HTTP/1.1\r\nHost: up.test:\(upstream.port)\r\n\r\n".utf8.count), "\(out)")
    }

    @Test("malformed and unroutable requests get 400 and leave an audit entry", arguments: [
        "GARBAGE\u{1}\r\n\r\n", "GET /relative HTTP/1.1\r\nHost: up.test\r\n\r\n", "CONNECT :443 HTTP/1.1\r\n\r\n",
    ])
    func malformed(_ request: String) async throws {
        let sink = CollectingSink()
        let (proxy, upstream) = try await served(sink)
        defer { upstream.stop() }
        let reply = proxy.viaProxy(request)
        await proxy.stop()
        #expect(reply.hasPrefix("HTTP/1.1 400"), "\(reply)")
        #expect(sink.events.contains { $0.kind == .egressDeny && $0.detail["host"] == "(malformed request)" }, "\(sink.events)")
        #expect(upstream.connections == 0)
    }
}
