import BackendOCI
import Foundation
import Testing
@testable import SandboxCore
@testable import SandboxEgress
import SandboxTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// An HTTP upstream on a thread of its own: answers every request with `hello`, counts
/// connections. On 127.0.0.1, or with `everyAddress` on every address of this host (`[::]`
/// dual-stack, as a careless host service binds 0.0.0.0).
final class LoopbackUpstream: @unchecked Sendable {
    let fd: Int32
    let port: UInt16
    private let lock = NSLock()
    private var count = 0
    var connections: Int { lock.withLock { count } }

    init(everyAddress: Bool = false) throws {
        let s: Int32
        if everyAddress {
            s = socket(AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
            var off: Int32 = 0
            setsockopt(s, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &off, socklen_t(MemoryLayout<Int32>.size))
            var addr = sockaddr_in6()
            addr.sin6_family = sa_family_t(AF_INET6)
            var len = socklen_t(MemoryLayout<sockaddr_in6>.size)
            _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, len) } }
            _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &len) } }
            port = UInt16(bigEndian: addr.sin6_port)
        } else {
            s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, len) } }
            _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &len) } }
            port = UInt16(bigEndian: addr.sin_port)
        }
        listen(s, 64)
        fd = s
        let thread = Thread { [self] in
            while true {
                let c = accept(fd, nil, nil)
                if c < 0 { return }
                lock.withLock { count += 1 }
                var buf = [UInt8](repeating: 0, count: 4096)
                _ = read(c, &buf, buf.count)
                let reply = Array("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello".utf8)
                _ = write(c, reply, reply.count)
                close(c)
            }
        }
        thread.start()
    }

    func stop() { shutdown(fd, Int32(SHUT_RDWR)); close(fd) }
}

@Suite("Egress from real sandboxes", .serialized)
struct EgressSandboxTests {
    func run(_ script: String, allow: [String], upstream: LoopbackUpstream, sink: CollectingSink) async throws -> ExecResult {
        let hub = EgressHub(configuration: .init(operatorMap: ["pypi.test": IPAddress(v4: 127, 0, 0, 1), "denied.test": IPAddress(v4: 127, 0, 0, 1)]))
        hub.setSink(sink)
        defer { Task { await hub.shutdown() } }
        let backend = try OCIBackend(configuration: .init(egress: hub))
        let profile = TestSandbox.profile { $0.network = NetworkPolicy(mode: .allowlist, allow: allow) }
        let spec = SandboxSpec(profile: profile)
        let result = try await backend.run(spec, ExecRequest(argv: ["/bin/sh", "-c", script]), output: nil)
        #expect(hub.count == 0, "the sandbox's proxy ends with the run")
        #expect(HostHealth.leftovers(of: spec.id).isEmpty)
        return result
    }

    @Test("an allowlisted name is reached through the proxy; the decision, bytes and duration are recorded", .realSandboxes)
    func allowed() async throws {
        let upstream = try LoopbackUpstream()
        defer { upstream.stop() }
        let sink = CollectingSink()
        let r = try await run("curl -sS -m 10 http://pypi.test:\(upstream.port)/x", allow: ["pypi.test"], upstream: upstream, sink: sink)
        #expect(r.stdout == "hello", "\(r.stderr)")
        #expect(upstream.connections == 1)
        let allow = try #require(sink.events.first { $0.kind == .egressAllow })
        #expect(allow.detail["host"] == "pypi.test")
        #expect(allow.detail["rule"] == "pypi.test")
        #expect(allow.detail["via"] == "proxy")
        if case .int(let n) = allow.detail["bytes_in"] { #expect(n >= 5) } else { Issue.record("no bytes_in") }
    }

    @Test("a denied host gets 403 with the reason and is never contacted", .realSandboxes)
    func denied() async throws {
        let upstream = try LoopbackUpstream()
        defer { upstream.stop() }
        let sink = CollectingSink()
        let r = try await run("curl -sS -m 10 -w ' %{http_code}' http://denied.test:\(upstream.port)/x", allow: ["pypi.test"], upstream: upstream, sink: sink)
        #expect(r.stdout.hasSuffix(" 403"))
        #expect(r.stdout.contains("denied.test:\(upstream.port) denied: no rule of profile 'default' allows it"))
        #expect(upstream.connections == 0)
        #expect(sink.events.map(\.kind) == [.egressDeny])
    }

    @Test("a profile that reaches the network is refused where no egress proxy runs", .realSandboxes)
    func noProxy() async throws {
        let backend = try OCIBackend(configuration: .init())
        let profile = TestSandbox.profile { $0.network = NetworkPolicy(mode: .allowlist, allow: ["pypi.test"]) }
        await #expect(throws: SandboxError.self) {
            _ = try await backend.run(SandboxSpec(profile: profile), ExecRequest(argv: ["/bin/true"]), output: nil)
        }
    }
}
