import BackendOCI
import Foundation
import SandboxCore
import SandboxEgress
import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

/// `sandboxer bench --suite egress`: the egress proxy against a direct connection to the same
/// loopback upstream, in one run — added latency per request (a client inside a sandbox's network
/// namespace through the proxy vs a client on the host straight to the upstream, both one
/// connection per request), throughput of a 100 MB download both ways (best of 5), and the extra create time
/// of an allowlist sandbox over a deny one (real sandboxes of `/bin/true`).
struct EgressBench {
    let iterations: Int
    let downloadBytes = 100 << 20

    func run() async throws {
        guard getuid() == 0 else { throw SandboxError(.hostUnsupported, "bench --suite egress needs root (network namespaces, sandboxes)") }
        let upstream = try BenchUpstream(bigBytes: downloadBytes)
        defer { upstream.stop() }
        let name = "upstream.bench"
        let hub = EgressHub(configuration: .init(operatorMap: [name: IPAddress(v4: 127, 0, 0, 1)]))
        let profile = Profile(name: "bench-egress", network: NetworkPolicy(mode: .allowlist, allow: [name]))
        let attachment = try await hub.attach(EgressRequest(sandboxId: "sbx-bench-egress", profile: profile, phase: .run))
        let ns = attachment.networkNamespacePath
        let port = upstream.port
        let small = "/small"

        // Added latency: alternate direct and proxied requests so drift hits both alike.
        var direct: [Double] = []
        var proxied: [Double] = []
        for _ in 0..<iterations {
            direct.append(try await BenchHTTP.timed { try BenchHTTP.get(fd: try BenchHTTP.hostSocket(), connectPort: port, request: "GET \(small) HTTP/1.1\r\nHost: \(name):\(port)\r\nConnection: close\r\n\r\n") })
            let fd = try await NetworkNamespace.tcpSocket(inNamespaceAt: ns)
            proxied.append(try await BenchHTTP.timed { try BenchHTTP.get(fd: fd, connectPort: 3128, request: "GET http://\(name):\(port)\(small) HTTP/1.1\r\nHost: \(name):\(port)\r\nConnection: close\r\n\r\n") })
        }
        let d = Percentiles(direct), p = Percentiles(proxied)
        print("\n| request through the egress proxy (\(iterations) each, one connection per request) | p50 ms | p90 ms | p99 ms |\n|---|---:|---:|---:|")
        print(benchRow(["direct to the loopback upstream (host side)", ms(d.p50), ms(d.p90), ms(d.p99)]))
        print(benchRow(["through the proxy (client inside a sandbox's namespace)", ms(p.p50), ms(p.p90), ms(p.p99)]))
        print(benchRow(["**added by the proxy**", "**\(ms(p.p50 - d.p50))**", ms(p.p90 - d.p90), ms(p.p99 - d.p99)]))

        // Throughput of a 100 MB download, best of 3 each.
        var directMBs: [Double] = []
        var proxiedMBs: [Double] = []
        let mb = Double(downloadBytes) / 1_048_576
        for _ in 0..<5 {
            let t1 = try await BenchHTTP.timed { try BenchHTTP.get(fd: try BenchHTTP.hostSocket(), connectPort: port, request: "GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", expect: downloadBytes) }
            directMBs.append(mb / (t1 / 1000))
            let fd = try await NetworkNamespace.tcpSocket(inNamespaceAt: ns)
            let t2 = try await BenchHTTP.timed { try BenchHTTP.get(fd: fd, connectPort: 3128, request: "GET http://\(name):\(port)/big HTTP/1.1\r\nHost: \(name):\(port)\r\nConnection: close\r\n\r\n", expect: downloadBytes) }
            proxiedMBs.append(mb / (t2 / 1000))
        }
        let bd = directMBs.max() ?? .nan, bp = proxiedMBs.max() ?? .nan
        print("\n| 100 MB download (best of 5) | MB/s | vs direct |\n|---|---:|---:|")
        print(benchRow(["direct", String(format: "%.0f", bd), "1.00×"]))
        print(benchRow(["through the proxy", String(format: "%.0f", bp), String(format: "**%.2f×**", bp / bd)]))
        await hub.detach(sandboxId: "sbx-bench-egress")

        try await createOverhead(hub: hub, profile: profile)
        await hub.shutdown()
    }

    /// Real one-shot sandboxes of `/bin/true`, deny and allowlist alternating; plus the proxy's
    /// attach + detach alone.
    func createOverhead(hub: EgressHub, profile: Profile) async throws {
        let backend = try OCIBackend(configuration: .init(egress: hub))
        let configuration = backend.configuration
        await BlockingPool.shared.run { GarbageCollector(configuration: configuration).collectQuietly() }
        var deny: [Double] = []
        var allow: [Double] = []
        var attach: [Double] = []
        let denyProfile = Profile(name: "bench-deny")
        for i in 0..<iterations {
            let r1 = try await backend.run(SandboxSpec(profile: denyProfile), ExecRequest(argv: ["/bin/true"]), output: nil)
            deny.append(r1.usage.wallMs)
            let r2 = try await backend.run(SandboxSpec(profile: profile), ExecRequest(argv: ["/bin/true"]), output: nil)
            allow.append(r2.usage.wallMs)
            let id = "sbx-bench-attach-\(i)"
            let t0 = HostClock.nowMs()
            _ = try await hub.attach(EgressRequest(sandboxId: id, profile: profile, phase: .run))
            await hub.detach(sandboxId: id)
            attach.append(HostClock.nowMs() - t0)
        }
        let d = Percentiles(deny), a = Percentiles(allow), x = Percentiles(attach)
        print("\n| one-shot sandbox of `/bin/true` (\(iterations) each, alternating) | p50 ms | p90 ms | p99 ms |\n|---|---:|---:|---:|")
        print(benchRow(["network deny (loopback only)", ms(d.p50), ms(d.p90), ms(d.p99)]))
        print(benchRow(["network allowlist (namespace + proxy + resolver)", ms(a.p50), ms(a.p90), ms(a.p99)]))
        print(benchRow(["**extra create time of allowlist**", "**\(ms(a.p50 - d.p50))**", ms(a.p90 - d.p90), ms(a.p99 - d.p99)]))
        print(benchRow(["the proxy's attach + detach alone", ms(x.p50), ms(x.p90), ms(x.p99)]))
    }
}

/// Blocking HTTP/1.1 client calls for the egress bench (one request per connection).
enum BenchHTTP {
    static func timed(_ body: @escaping @Sendable () throws -> Void) async throws -> Double {
        try await DedicatedThread.run(name: "sbx-bench") { () -> Result<Double, Error> in
            let t0 = HostClock.nowMs()
            do { try body() } catch { return .failure(error) }
            return .success(HostClock.nowMs() - t0)
        }.get()
    }

    static func hostSocket() throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SandboxError(.system, "socket: \(String(cString: strerror(errno)))") }
        return fd
    }

    /// Connects `fd` to 127.0.0.1:`connectPort` (in whatever namespace `fd` was made), sends
    /// `request`, reads to the end; checks the body length when `expect` is given.
    static func get(fd: Int32, connectPort: UInt16, request: String, expect: Int? = nil) throws {
        defer { close(fd) }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let rc = IPAddress(v4: 127, 0, 0, 1).withSocketAddress(port: connectPort) { connect(fd, $0, $1) }
        guard rc == 0 else { throw SandboxError(.system, "connect: \(String(cString: strerror(errno)))") }
        let bytes = Array(request.utf8)
        guard write(fd, bytes, bytes.count) == bytes.count else { throw SandboxError(.system, "send failed") }
        var buf = [UInt8](repeating: 0, count: 1 << 18)
        var total = 0
        var head: [UInt8] = []
        while true {
            let n = read(fd, &buf, buf.count)
            if n <= 0 { break }
            total += n
            if head.count < 64 { head += buf[0..<min(n, 64)] }
        }
        guard String(decoding: head, as: UTF8.self).hasPrefix("HTTP/1.1 200") else {
            throw SandboxError(.system, "unexpected reply: \(String(decoding: head, as: UTF8.self))")
        }
        if let expect, total < expect { throw SandboxError(.system, "short download: \(total) of \(expect) bytes") }
    }
}

/// A loopback HTTP upstream for the bench: `/small` (32 bytes) and `/big` (`bigBytes`), a thread per connection.
final class BenchUpstream: Sendable {
    let fd: Int32
    let port: UInt16

    init(bigBytes: Int) throws {
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var one: Int32 = 1
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard IPAddress(v4: 127, 0, 0, 1).withSocketAddress(port: 0, { bind(s, $0, $1) }) == 0, listen(s, 256) == 0 else {
            throw SandboxError(.system, "bench upstream: \(String(cString: strerror(errno)))")
        }
        var addr = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &len) } }
        fd = s
        port = UInt16(bigEndian: addr.sin_port)
        let chunk = [UInt8](repeating: 0x61, count: 1 << 18)
        Thread.detachNewThread {
            while true {
                let c = accept(s, nil, nil)
                if c < 0 { return }
                Thread.detachNewThread {
                    defer { close(c) }
                    var one: Int32 = 1
                    setsockopt(c, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                    var buf = [UInt8](repeating: 0, count: 4096)
                    let n = read(c, &buf, buf.count)
                    guard n > 0 else { return }
                    let big = String(decoding: buf[0..<n], as: UTF8.self).hasPrefix("GET /big")
                    let length = big ? bigBytes : 32
                    let head = Array("HTTP/1.1 200 OK\r\nContent-Length: \(length)\r\nConnection: close\r\n\r\n".utf8)
                    _ = write(c, head, head.count)
                    var left = length
                    while left > 0 {
                        let w = chunk.withUnsafeBytes { write(c, $0.baseAddress!, min(left, chunk.count)) }
                        if w <= 0 { return }
                        left -= w
                    }
                }
            }
        }
    }

    func stop() { shutdown(fd, Int32(SHUT_RDWR)); close(fd) }
}
