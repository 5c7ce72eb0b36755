import Foundation
import SandboxCore
import Synchronization

#if canImport(Glibc)
import Glibc
import SandboxLinux
#endif

extension Duration {
    /// The duration in (fractional) milliseconds.
    var milliseconds: Double {
        let c = components
        return Double(c.seconds) * 1000 + Double(c.attoseconds) / 1e15
    }
}

/// The `http.get` tool: a minimal HTTP/1.0 GET over a plain TCP socket, only where the profile's
/// `network.allow` allows it — decided by ``EgressPolicy``, the egress proxy's own function — no
/// redirects, no TLS, bounded by the run's deadline and a 1 MiB body.
///
/// The name is resolved once, the policy decides on the addresses (loopback, private, link-local,
/// multicast … are refused whatever the allowlist says, unless the operator mapped the name), and
/// the socket connects to exactly the approved address. `Host:` carries the name. A URL with a control character or a space is
/// refused, so nothing can be smuggled into the request head.
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
    /// The longest one request may take, even when the run has more time left.
    static let maxDuration: Duration = .seconds(30)

    /// Refuses URLs with bytes below 0x20, DEL or a space (CR/LF would end the request line).
    static func checkCharacters(_ url: String) throws(Failure) {
        if let offset = url.utf8.firstIndex(where: { $0 < 0x20 || $0 == 0x7F || $0 == 0x20 }) {
            let byte = url.utf8[offset]
            let position = url.utf8.distance(from: url.utf8.startIndex, to: offset)
            throw Failure("the URL contains a control character or space (byte 0x\(String(byte, radix: 16, uppercase: true)) at offset \(position)); percent-encode it")
        }
    }

    /// Parses `http://host[:port]/path` into its parts.
    static func parse(_ url: String) throws(Failure) -> (host: String, port: UInt16, path: String) {
        try checkCharacters(url)
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
        guard !host.isEmpty, host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || ".-:".contains($0)) }) else {
            throw Failure("bad host in \(url)")
        }
        return (host.lowercased(), port, path)
    }

    /// The policy of a WASM sandbox: its profile's allowlist, decided by the same function as the
    /// egress proxy's, with the operator's name map from `$SANDBOXER_RESOLVE` and their
    /// `--resolve-for-cidr-rules` from `$SANDBOXER_RESOLVE_FOR_CIDR_RULES`.
    static func policy(allow: [String], environment: [String: String] = ProcessInfo.processInfo.environment) -> EgressPolicy {
        let map = (try? EgressPolicy.operatorMap(EgressPolicy.environmentEntries(environment))) ?? [:]
        let network = NetworkPolicy(mode: allow.isEmpty ? .deny : .allowlist, allow: allow.filter { (try? AllowRule($0)) != nil })
        if let policy = try? EgressPolicy(network: network, profile: "wasm", operatorMap: map,
                                          resolveForAddressRules: EgressPolicy.environmentResolvesForAddressRules(environment)) { return policy }
        // Every entry was parsed above; a policy that cannot be made allows nothing.
        return try! EgressPolicy(network: .deny, profile: "wasm")
    }

    /// Fetches `url` if `policy` allows it: the name is resolved once, the policy decides on the
    /// addresses (the always-blocked ranges included), and the socket connects to the approved one.
    /// `note` says what the policy decided (nil when the URL was refused before a decision).
    static func fetch(_ url: String, policy: EgressPolicy, deadline runDeadline: ContinuousClock.Instant) throws(Failure) -> Response {
        var note: EgressNote?
        return try fetch(url, policy: policy, deadline: runDeadline, note: &note)
    }

    static func fetch(_ url: String, policy: EgressPolicy, deadline runDeadline: ContinuousClock.Instant,
                      note: inout EgressNote?) throws(Failure) -> Response {
        let (host, port, path) = try parse(url)
        let deadline = min(runDeadline, ContinuousClock.now + maxDuration)
        guard deadline > ContinuousClock.now else { throw Failure("the run's deadline has passed") }
        // Names no rule allows by name are refused before any lookup (a lookup would carry the
        // name to the host's resolver and beyond); the operator's map and literals need none.
        let addresses = policy.mayLookUp(host, port: port) ? try resolve(host, deadline: deadline) : []
        let address: IPAddress
        switch policy.decide(host: host, port: port, resolved: addresses) {
        case .allow(let a, let rule):
            address = a
            note = EgressNote(host: host, port: port, allowed: true, rule: rule)
        case .deny(let reason):
            note = EgressNote(host: host, port: port, allowed: false, rule: reason)
            throw Failure(reason)
        }
        let socket = try SocketIO.connect([address], port: port, host: host, deadline: deadline)
        defer { close(socket.fd) }
        let hostHeader = (host.contains(":") ? "[\(host)]" : host) + (port == 80 ? "" : ":\(port)")
        try socket.sendAll(Array("GET \(path) HTTP/1.0\r\nHost: \(hostHeader)\r\nUser-Agent: sandboxer-wasm\r\nConnection: close\r\n\r\n".utf8))
        let data = try socket.receiveAll(limit: maxResponseBytes)
        note?.bytesIn = Int64(data.count)
        return try parseResponse(data)
    }

    /// Resolves `host` once, giving up at `deadline`: `getaddrinfo` cannot be interrupted, so it
    /// runs on a thread of its own that the run's thread stops waiting for at the deadline (the
    /// lookup then ends by the resolver's own timeout, holding nothing of the run).
    static func resolve(_ host: String, deadline: ContinuousClock.Instant) throws(Failure) -> [IPAddress] {
        if let literal = IPAddress(host) { return [literal] }
        final class Box: Sendable {
            let done = DispatchSemaphore(value: 0)
            let result = Mutex<Result<[IPAddress], Failure>>(.failure(Failure("DNS lookup did not run")))
        }
        let box = Box()
        do throws(SandboxError) {
            try DedicatedThread.start(stackSize: 256 << 10, name: "sbx-dns") {
                let found = Result { () throws(Failure) in try resolve(host) }
                box.result.withLock { $0 = found }
                box.done.signal()
            }
        } catch {
            throw Failure("no thread for the DNS lookup of \(host) (\(error.message)); retry")
        }
        let left = deadline - ContinuousClock.now
        let ms = max(0, Int(left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000))
        guard box.done.wait(timeout: .now() + .milliseconds(ms)) == .success else {
            throw Failure("the DNS lookup of \(host) did not finish before the run's deadline")
        }
        return try box.result.withLock { $0 }.get()
    }

    /// Resolves `host` once: an IP literal as is, a name through `getaddrinfo` (blocking).
    static func resolve(_ host: String) throws(Failure) -> [IPAddress] {
        switch IPAddress.lookup(host) {
        case .success(let addresses): return addresses
        case .failure(let f): throw Failure("cannot resolve \(host): \(f.reason)")
        }
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
}

/// A non-blocking TCP socket whose every wait is bounded by one deadline.
struct SocketIO {
    let fd: Int32
    let deadline: ContinuousClock.Instant

    /// Milliseconds left until the deadline (at least 1 while it has not passed), or nil.
    var remainingMs: Int32? {
        let left = deadline - ContinuousClock.now
        guard left > .zero else { return nil }
        return Int32(max(1, min(left.milliseconds.rounded(.up), Double(Int32.max))))
    }

    /// Waits until `fd` is ready for `events`; throws once the deadline passes.
    func wait(_ events: Int32, what: String) throws(HTTPGet.Failure) {
        while true {
            guard let ms = remainingMs else { throw HTTPGet.Failure("\(what) did not finish before the run's deadline") }
            var p = pollfd(fd: fd, events: Int16(events), revents: 0)
            let r = poll(&p, 1, ms)
            if r > 0 { return }
            if r < 0 && errno != EINTR { throw HTTPGet.Failure("\(what) failed: \(String(cString: strerror(errno)))") }
        }
    }

    /// Connects to the first of `addresses` that accepts, each attempt bounded by the deadline.
    static func connect(_ addresses: [IPAddress], port: UInt16, host: String, deadline: ContinuousClock.Instant) throws(HTTPGet.Failure) -> SocketIO {
        var lastError = "no address"
        for address in addresses {
            let family = address.isIPv4 ? AF_INET : AF_INET6
            let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            if fd < 0 { lastError = String(cString: strerror(errno)); continue }
            let io = SocketIO(fd: fd, deadline: deadline)
            var rc = address.withSocketAddress(port: port) { Glibc.connect(fd, $0, $1) }
            if rc < 0 && errno == EINPROGRESS {
                do {
                    try io.wait(POLLOUT, what: "connecting to \(address)")
                    var err: Int32 = 0
                    var len = socklen_t(MemoryLayout<Int32>.size)
                    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
                    rc = err == 0 ? 0 : -1
                    errno = err
                } catch {
                    close(fd)
                    throw error
                }
            }
            if rc == 0 { return io }
            lastError = "\(address): \(String(cString: strerror(errno)))"
            close(fd)
        }
        throw HTTPGet.Failure("cannot connect to \(host):\(port): \(lastError)")
    }

    func sendAll(_ bytes: [UInt8]) throws(HTTPGet.Failure) {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            if n >= 0 { sent += n; continue }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: try wait(POLLOUT, what: "sending the request")
            default: throw HTTPGet.Failure("send failed: \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Reads until the peer closes; throws past `limit` bytes or the deadline.
    func receiveAll(limit: Int) throws(HTTPGet.Failure) -> [UInt8] {
        var data = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, 16384, 0) }
            if n == 0 { return data }
            if n > 0 {
                data.append(contentsOf: buf[0..<n])
                if data.count > limit { throw HTTPGet.Failure("response is over \(limit) bytes") }
                continue
            }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: try wait(POLLIN, what: "reading the response")
            default: throw HTTPGet.Failure("receive failed: \(String(cString: strerror(errno)))")
            }
        }
    }
}
