/// Where a secret's value may go: a host name or `*.` wildcard, a scheme and a port, written
/// `[http://|https://]host[:port]`. Unless the entry says otherwise the value goes over https and
/// to port 443 only: a plain-HTTP request, or one to another port of the same host, keeps the
/// placeholder. Plain HTTP has to be named (`http://host[:port]`, port 80 by default).
public struct SecretTarget: Sendable, Hashable, CustomStringConvertible {
    /// The host part: a name or a wildcard (never an address).
    public var host: AllowRule
    /// https (true) or plain http.
    public var tls: Bool
    public var port: UInt16

    /// Parses an entry; an invalid one is an `invalid_request` naming it and what is wrong.
    public init(_ entry: String) throws(SandboxError) {
        var rest = entry.trimmingCharacters(in: .whitespaces)
        let lower = rest.lowercased()
        tls = true
        if lower.hasPrefix("http://") {
            tls = false
            rest.removeFirst("http://".count)
        } else if lower.hasPrefix("https://") {
            rest.removeFirst("https://".count)
        }
        if rest.hasSuffix("/") { rest.removeLast() }
        func bad(_ why: String) -> SandboxError {
            SandboxError(.invalidRequest, "secret hosts entry '\(entry)': \(why); use [https://|http://]host[:port], e.g. api.example.com, *.example.com, api.example.com:8443 or http://api.internal:8080")
        }
        guard !rest.contains("/"), !rest.contains("@") else { throw bad("a path or user part is not a host") }
        let rule: AllowRule
        do { rule = try AllowRule(rest) } catch { throw bad("it is not a host name") }
        if case .network = rule.target { throw bad("addresses and CIDRs are not accepted, name the host the sandbox connects to") }
        host = rule
        port = rule.port ?? (tls ? 443 : 80)
    }

    /// The stored form: `host` for https on 443, `host:port` for https elsewhere,
    /// `http://host` (port 80) or `http://host:port` for plain HTTP.
    public var description: String {
        let name: String
        switch host.target {
        case .name(let n): name = n
        case .wildcard(let suffix): name = "*." + suffix
        case .network: name = host.text
        }
        let defaultPort: UInt16 = tls ? 443 : 80
        let hostPort = port == defaultPort ? name : "\(name):\(port)"
        return tls ? hostPort : "http://" + hostPort
    }

    /// Whether a request to `host`:`port`, over TLS or not, may carry the value.
    public func matches(host name: String, port: UInt16, tls: Bool) -> Bool {
        tls == self.tls && port == self.port && host.matches(host: name, address: nil, port: port)
    }
}
