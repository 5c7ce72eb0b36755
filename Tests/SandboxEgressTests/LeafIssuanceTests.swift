import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import SandboxLinux
import Synchronization
import Testing
@testable import SandboxEgress

/// Issue 18, item 5: a TLS leaf certificate (a key generated, a certificate signed) is never made
/// on an event loop; the egress proxy gets it from a cache or from the blocking pool.
@Suite("Egress TLS leaves are issued off the event loop")
struct LeafIssuanceTests {
    /// The server's real CA, noting the thread each certificate is issued on.
    final class Noting: InterceptionTLS {
        let ca: CAInterception
        let loop: any EventLoop
        private let issued = Mutex<[(onLoop: Bool, thread: String)]>([])
        init(_ ca: CAInterception, loop: any EventLoop) {
            self.ca = ca
            self.loop = loop
        }
        var caCertificatePEM: String { ca.caCertificatePEM }
        var upstreamContext: NIOSSLContext { ca.upstreamContext }
        func cachedServerContext(for host: String) -> NIOSSLContext? { ca.cachedServerContext(for: host) }
        func serverContext(for host: String) throws -> NIOSSLContext {
            let thread = ((try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? "").trimmingCharacters(in: .newlines)
            issued.withLock { $0.append((loop.inEventLoop, thread)) }
            return try ca.serverContext(for: host)
        }
        var issuances: [(onLoop: Bool, thread: String)] { issued.withLock { $0 } }
    }

    @Test("the first request for a host issues on the blocking pool; the next one is served from the cache on the loop")
    func offTheLoopThenCached() async throws {
        let dir = NSTemporaryDirectory() + "sbx-leaf-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let tls = Noting(try CAInterception(directory: dir, upstreamCA: nil), loop: loop)
        let first = try await loop.flatSubmit { tls.serverContext(for: "api.test", on: loop) }.get()
        let second = try await loop.flatSubmit { tls.serverContext(for: "API.test.", on: loop) }.get()
        #expect(first === second, "one context per host, cached")
        let issuances = tls.issuances
        #expect(issuances.count == 1, "issued once")
        #expect(issuances.first?.onLoop == false)
        #expect(issuances.first?.thread.hasPrefix("sbx-pool-") == true, "\(issuances)")
    }

    @Test("a name that cannot have a certificate fails the future (on the loop), it does not throw on it")
    func badNameFails() async throws {
        let dir = NSTemporaryDirectory() + "sbx-leaf-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let tls = Noting(try CAInterception(directory: dir, upstreamCA: nil), loop: loop)
        await #expect(throws: (any Error).self) { try await loop.flatSubmit { tls.serverContext(for: "*.wild.test", on: loop) }.get() }
    }
}
