import Foundation
import NIOCore
import NIOPosix
@testable import SandboxCore
@testable import SandboxEgress

#if canImport(Glibc)
import Glibc
#endif

/// One session's real proxy stack on loopback ports, as a sandbox's namespace would serve it: the
/// explicit proxy (`HTTP_PROXY`) and a transparent listener (what the resolver hands out) for `port`.
final class LoopbackProxy: @unchecked Sendable {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let session: EgressSession
    private(set) var proxyPort: UInt16 = 0
    private(set) var transparentPort: UInt16 = 0
    private var channels: [Channel] = []

    init(session: EgressSession, transparentPort routed: UInt16 = 443) async throws {
        self.session = session
        let proxy = try await ServerBootstrap(group: group)
            .childChannelInitializer { ch in
                ch.eventLoop.makeCompletedFuture { try ProxyHandler.install(on: ch.pipeline.syncOperations, mode: .proxy, session: session) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let transparent = try await ServerBootstrap(group: group)
            .childChannelInitializer { ch in
                ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(TransparentSniffer(port: routed, session: session)) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        channels = [proxy, transparent]
        proxyPort = UInt16(proxy.localAddress!.port!)
        transparentPort = UInt16(transparent.localAddress!.port!)
    }

    func stop() async {
        for c in channels { try? await c.close() }
        session.close()
        try? await group.shutdownGracefully()
    }

    /// Sends `first`, reads the reply's head (to the blank line), then sends `then` and reads until
    /// the proxy closes: what a client does through a CONNECT tunnel.
    static func tunnel(port: UInt16, _ first: String, then: String) -> (head: String, rest: String) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var tv = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        guard IPAddress(v4: 127, 0, 0, 1).withSocketAddress(port: port, { connect(fd, $0, $1) }) == 0 else { return ("(connect failed)", "") }
        func send(_ s: String) { let b = Array(s.utf8); _ = b.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, b.count, Int32(MSG_NOSIGNAL)) } }
        send(first)
        var head: [UInt8] = []
        var byte: UInt8 = 0
        while !head.suffix(4).elementsEqual([13, 10, 13, 10]), recv(fd, &byte, 1, 0) == 1 { head.append(byte) }
        send(then)
        var rest: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &buf, buf.count, 0)
            if n <= 0 { break }
            rest += buf[0..<n]
        }
        return (String(decoding: head, as: UTF8.self), String(decoding: rest, as: UTF8.self))
    }

    /// Sends `bytes` to `port` on 127.0.0.1 and reads until the proxy closes (or 10 s pass).
    static func exchange(port: UInt16, _ bytes: [UInt8]) -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var tv = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        guard IPAddress(v4: 127, 0, 0, 1).withSocketAddress(port: port, { connect(fd, $0, $1) }) == 0 else { return "(connect failed)" }
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, bytes.count, Int32(MSG_NOSIGNAL)) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &buf, buf.count, 0)
            if n <= 0 { break }
            out += buf[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    func viaProxy(_ request: String) -> String { Self.exchange(port: proxyPort, Array(request.utf8)) }
    func viaTransparent(_ bytes: [UInt8]) -> String { Self.exchange(port: transparentPort, bytes) }

    /// A TLS 1.2/1.3 ClientHello naming `serverName` (enough for the proxy's SNI routing).
    static func clientHello(serverName: String) -> [UInt8] {
        func u16(_ n: Int) -> [UInt8] { [UInt8(n >> 8), UInt8(n & 0xFF)] }
        let name = Array(serverName.utf8)
        let sni = u16(0) + u16(name.count + 5) + u16(name.count + 3) + [0] + u16(name.count) + name
        var body: [UInt8] = [3, 3] + [UInt8](repeating: 7, count: 32) + [0] + u16(2) + [0x13, 0x01] + [1, 0]
        body += u16(sni.count) + sni
        let handshake: [UInt8] = [1, 0] + u16(body.count) + body
        return [0x16, 3, 1] + u16(handshake.count) + handshake
    }
}

/// Names a lookup function was called with (the real lookup runs behind it).
final class LookupLog: @unchecked Sendable {
    private let lock = NSLock()
    private var seen: [String] = []
    var names: [String] { lock.withLock { seen } }

    /// The host's resolver, with every call logged first.
    func logging(_ inner: @escaping HostResolver.Lookup = HostResolver.system) -> HostResolver.Lookup {
        { name in
            self.lock.withLock { self.seen.append(name) }
            return inner(name)
        }
    }
}
