import Foundation
import SandboxServer
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// An unauthenticated flood of half-sent requests (issue 17, item 1) against a real server on
/// loopback: one client address gets its share of connections and no more, half-sent headers are
/// cut off, and other clients are served throughout.
@Suite(.serialized) struct ConnectionFloodTests {
    static let limits = ConnectionLimits(maxConnections: 64, maxConnectionsPerClient: 8, headerTimeout: .seconds(60), idleTimeout: .seconds(60))

    @Test func oneClientGetsItsShareOfConnectionsAndOthersAreServed() async throws {
        try await ServedApp.with(configuration: .init(port: 0, connections: Self.limits)) { app in
            let port = app.port
            let (other, states) = try await RawClient.offPool { () throws -> (Int, [RawClient.ReadState]) in
                // 200 connections from 127.0.0.1, each with half a request's headers.
                var flood: [Int32] = []
                defer { for fd in flood { close(fd) } }
                for _ in 0..<200 {
                    let fd = try RawClient.connect(from: "127.0.0.1", port: port)
                    RawClient.send(fd, "GET /healthz HTTP/1.1\r\nHost: flood\r\n")
                    flood.append(fd)
                }
                // Another client is served while the flood holds its connections.
                let other = try RawClient.status(from: "127.0.0.2", port: port, "GET /healthz HTTP/1.1\r\nHost: ok\r\nConnection: close\r\n\r\n")
                return (other, flood.map { RawClient.readState($0, waitSeconds: 1) })
            }
            #expect(other == 200)
            // The server closed every flood connection beyond the client's share (EOF); the rest
            // wait for the rest of their headers (no data, not closed, within 1 s).
            let open = states.filter { $0 == .open }.count, closed = states.filter { $0 == .closed }.count
            #expect(!states.contains(.data), "a half-sent request got an answer")
            #expect(open <= Self.limits.maxConnectionsPerClient, "\(open) flood connections kept open, over the per-client cap")
            #expect(closed >= 200 - Self.limits.maxConnectionsPerClient)
        }
    }

    @Test func halfSentHeadersAreCutOffAfterTheHeaderTimeout() async throws {
        var limits = Self.limits
        limits.headerTimeout = .seconds(1)
        try await ServedApp.with(configuration: .init(port: 0, connections: limits)) { app in
            let port = app.port
            let (state, status) = try await RawClient.offPool { () throws -> (RawClient.ReadState, Int) in
                let fd = try RawClient.connect(from: "127.0.0.1", port: port)
                defer { close(fd) }
                RawClient.send(fd, "GET /healthz HTTP/1.1\r\nHost: slow\r\n")
                // Without a header timeout the connection would stay open for good (bound: 30 s).
                let state = RawClient.readState(fd, waitSeconds: 30)
                // A complete request on a fresh connection is still answered.
                return (state, try RawClient.status(from: "127.0.0.1", port: port, "GET /healthz HTTP/1.1\r\nHost: ok\r\nConnection: close\r\n\r\n"))
            }
            #expect(state == .closed)
            #expect(status == 200)
        }
    }
}

/// Blocking loopback TCP for the flood: a chosen source address, raw bytes, the peer's state.
enum RawClient {
    enum ReadState: Equatable, Sendable { case closed, open, data }

    /// Runs blocking socket work on a thread of its own: blocking the few threads of Swift's
    /// cooperative pool would starve every server of the test process.
    static func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try body() }) }.start()
        }
    }

    static func connect(from source: String, port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EMFILE) }
        var local = address(source, port: 0)
        var remote = address("127.0.0.1", port: port)
        let ok = withUnsafePointer(to: &local) { l in
            l.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        } && withUnsafePointer(to: &remote) { r in
            r.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard ok else {
            let e = errno
            close(fd)
            throw POSIXError(POSIXErrorCode(rawValue: e) ?? .EIO)
        }
        return fd
    }

    static func address(_ ip: String, port: Int) -> sockaddr_in {
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, ip, &a.sin_addr)
        return a
    }

    static func send(_ fd: Int32, _ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, bytes.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Waits up to `waitSeconds` for the peer: EOF or reset (closed), bytes (data), or nothing (open).
    static func readState(_ fd: Int32, waitSeconds: Int32) -> ReadState {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let n = poll(&p, 1, waitSeconds * 1000)
        if n == 0 { return .open }
        var byte: UInt8 = 0
        let r = recv(fd, &byte, 1, Int32(MSG_DONTWAIT))
        return r > 0 ? .data : .closed
    }

    /// Sends one request and returns the status code of its response.
    static func status(from source: String, port: Int, _ request: String) throws -> Int {
        let fd = try connect(from: source, port: port)
        defer { close(fd) }
        send(fd, request)
        var tv = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var out = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 4096)
        while !out.contains(10) {
            let n = recv(fd, &buf, buf.count, 0)
            if n <= 0 { break }
            out += buf[0..<n]
        }
        let line = String(decoding: out, as: UTF8.self).split(separator: "\r\n").first ?? ""
        let parts = line.split(separator: " ")
        return parts.count > 1 ? Int(parts[1]) ?? 0 : 0
    }
}
