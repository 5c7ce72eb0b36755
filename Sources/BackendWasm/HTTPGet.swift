import Foundation

#if canImport(Glibc)
import Glibc
#endif

extension Duration {
    /// The duration in (fractional) milliseconds.
    var milliseconds: Double {
        let c = components
        return Double(c.seconds) * 1000 + Double(c.attoseconds) / 1e15
    }
}

/// The `http.get` tool: a minimal HTTP/1.0 GET over a plain TCP socket, only to hosts in the
/// profile's `network.allow` (`host` or `host:port`), no redirects, no TLS, bounded by the run's
/// deadline and a 1 MiB body.
enum HTTPGet {
    struct Response {
        var status: Int
        var headers: [String: String]
        var body: String
    }
    struct Failure: Error {
        var message: String
        init(_ message: String) { self.message = message }
    }

    static let maxResponseBytes = 1 << 20

    /// Parses `http://host[:port]/path` into its parts.
    static func parse(_ url: String) throws(Failure) -> (host: String, port: UInt16, path: String) {
        guard url.hasPrefix("http://") else { throw Failure("only http:// URLs are supported (got \(url))") }
        let rest = url.dropFirst("http://".count)
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        var path = String(rest.dropFirst(authority.count).prefix { $0 != "#" })
        if path.isEmpty || path.first == "?" { path = "/" + path }
        guard !authority.contains("@") else { throw Failure("credentials in URLs are not allowed") }
        var host = String(authority)
        var port: UInt16 = 80
        if let colon = authority.lastIndex(of: ":"), !authority.hasSuffix("]") {
            guard let p = UInt16(authority[authority.index(after: colon)...]) else { throw Failure("bad port in \(url)") }
            port = p
            host = String(authority[..<colon])
        }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, host.allSatisfy({ $0.isLetter || $0.isNumber || ".-:".contains($0) }) else {
            throw Failure("bad host in \(url)")
        }
        return (host.lowercased(), port, path)
    }

    /// Whether `host:port` is in the allowlist (an entry `host` allows every port).
    static func isAllowed(host: String, port: UInt16, allow: [String]) -> Bool {
        allow.contains { entry in
            let e = entry.lowercased()
            return e == host || e == "\(host):\(port)" || e == "[\(host)]:\(port)"
        }
    }

    static func fetch(_ url: String, allow: [String], deadline: ContinuousClock.Instant) throws(Failure) -> Response {
        let (host, port, path) = try parse(url)
        guard isAllowed(host: host, port: port, allow: allow) else {
            throw Failure("\(host):\(port) is not in the profile's network allowlist (\(allow.isEmpty ? "empty" : allow.joined(separator: ", ")))")
        }
        let remaining = deadline - ContinuousClock.now
        guard remaining > .zero else { throw Failure("the run's deadline has passed") }
        // At least 1 ms: a zero SO_RCVTIMEO would mean "block forever".
        let timeoutMs = Int32(max(1, min(remaining.milliseconds.rounded(.up), 30_000)))
        let fd = try connect(host: host, port: port, timeoutMs: timeoutMs)
        defer { close(fd) }
        var tv = timeval(tv_sec: Int(timeoutMs / 1000), tv_usec: Int(timeoutMs % 1000) * 1000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let hostHeader = port == 80 ? host : "\(host):\(port)"
        let request = Array("GET \(path) HTTP/1.0\r\nHost: \(hostHeader)\r\nUser-Agent: sandboxer-wasm\r\nConnection: close\r\n\r\n".utf8)
        var sent = 0
        while sent < request.count {
            let n = request.withUnsafeBytes { send(fd, $0.baseAddress! + sent, request.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 { if errno == EINTR { continue }; throw Failure("send failed: \(String(cString: strerror(errno)))") }
            sent += n
        }
        var data = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, 16384, 0) }
            if n < 0 { if errno == EINTR { continue }; throw Failure("receive failed: \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            data.append(contentsOf: buf[0..<n])
            if data.count > maxResponseBytes { throw Failure("response is over \(maxResponseBytes) bytes") }
        }
        return try parseResponse(data)
    }

    static func parseResponse(_ data: [UInt8]) throws(Failure) -> Response {
        let sep: [UInt8] = [13, 10, 13, 10]
        guard let end = (0..<max(0, data.count - 3)).first(where: { data[$0..<$0 + 4].elementsEqual(sep) }) else {
            throw Failure("malformed HTTP response")
        }
        let head = String(decoding: data[0..<end], as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = head.first?.split(separator: " ") ?? []
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else { throw Failure("malformed HTTP status line") }
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return Response(status: status, headers: headers, body: String(decoding: data[(end + 4)...], as: UTF8.self))
    }

    /// Resolves `host` and connects with a timeout; returns the socket.
    static func connect(host: String, port: UInt16, timeoutMs: Int32) throws(Failure) -> Int32 {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0, let first = list else { throw Failure("cannot resolve \(host): \(String(cString: gai_strerror(rc)))") }
        defer { freeaddrinfo(list) }
        var lastError = "no address"
        var ai: UnsafeMutablePointer<addrinfo>? = first
        while let a = ai {
            ai = a.pointee.ai_next
            let fd = socket(a.pointee.ai_family, a.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), a.pointee.ai_protocol)
            if fd < 0 { lastError = String(cString: strerror(errno)); continue }
            var r = Glibc.connect(fd, a.pointee.ai_addr, a.pointee.ai_addrlen)
            if r < 0 && errno == EINPROGRESS {
                var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                r = poll(&p, 1, timeoutMs) == 1 ? 0 : -1
                var err: Int32 = 0
                var len = socklen_t(MemoryLayout<Int32>.size)
                if r == 0 { getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len); if err != 0 { r = -1; errno = err } } else { errno = ETIMEDOUT }
            }
            if r == 0 {
                let flags = fcntl(fd, F_GETFL)
                _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK)
                return fd
            }
            lastError = String(cString: strerror(errno))
            close(fd)
        }
        throw Failure("cannot connect to \(host):\(port): \(lastError)")
    }
}
