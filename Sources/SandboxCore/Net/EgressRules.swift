import Foundation


/// One entry of a profile's `network.allow`: a host name (`pypi.org`), a wildcard (`*.example.com`:
/// any name below it, not the apex), or an IPv4/IPv6 CIDR (`203.0.113.0/24`, `2001:db8::/32`, or one
/// address), each with an optional port (`api.example.com:443`, `[2001:db8::1]:443`).
public struct AllowRule: Sendable, Hashable, CustomStringConvertible {
    public enum Target: Sendable, Hashable {
        case name(String)
        /// The suffix after `*.` (lower case).
        case wildcard(String)
        case network(prefix: [UInt8], bits: Int)
    }
    public var target: Target
    /// nil: any port.
    public var port: UInt16?
    /// The entry as written (for decisions and errors).
    public var text: String

    public var description: String { text }

    /// Parses an entry; an invalid one is an `invalid_request` naming it and what is wrong.
    public init(_ entry: String) throws(SandboxError) {
        text = entry
        let raw = entry.trimmingCharacters(in: .whitespaces)
        func bad(_ why: String) -> SandboxError {
            SandboxError(.invalidRequest, "network.allow entry '\(entry)': \(why); use a name (pypi.org), a wildcard (*.example.com), a CIDR (203.0.113.0/24), each with an optional :port")
        }
        var host = raw
        port = nil
        // [v6]:port, v6 alone, name:port, v4:port, CIDR (the port goes after the prefix length).
        if raw.hasPrefix("[") {
            guard let close = raw.firstIndex(of: "]") else { throw bad("an unclosed '['") }
            host = String(raw[raw.index(after: raw.startIndex)..<close])
            let rest = raw[raw.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":"), let p = UInt16(rest.dropFirst()), p > 0 else { throw bad("a port must be 1 to 65535") }
                port = p
            }
        } else if raw.filter({ $0 == ":" }).count == 1 {
            let parts = raw.split(separator: ":", omittingEmptySubsequences: false)
            guard let p = UInt16(parts[1]), p > 0 else { throw bad("a port must be 1 to 65535") }
            host = String(parts[0])
            port = p
        }
        if let slash = host.firstIndex(of: "/") {
            let address = String(host[..<slash])
            guard let ip = IPAddress(address) else { throw bad("'\(address)' is not an IP address") }
            guard let bits = Int(host[host.index(after: slash)...]), bits >= 0, bits <= ip.bytes.count * 8 else {
                throw bad("the prefix length must be 0 to \(ip.bytes.count * 8)")
            }
            guard Self.masked(ip.bytes, bits) == ip.bytes else { throw bad("host bits are set below /\(bits)") }
            target = .network(prefix: ip.bytes, bits: bits)
            return
        }
        if let ip = IPAddress(host) {
            target = .network(prefix: ip.bytes, bits: ip.bytes.count * 8)
            return
        }
        var name = host.lowercased()
        if name.hasSuffix(".") { name.removeLast() }
        let wildcard = name.hasPrefix("*.")
        if wildcard { name.removeFirst(2) }
        guard Self.isHostName(name) else { throw bad("'\(host)' is not a host name") }
        guard !wildcard || name.contains(".") else { throw bad("a wildcard needs at least two labels after '*.' (*.example.com)") }
        target = wildcard ? .wildcard(name) : .name(name)
    }

    /// Whether the rule allows connecting to `host` (a name or an address literal) on `port`,
    /// where `address` is the address the connection would go to.
    public func matches(host: String, address: IPAddress?, port: UInt16) -> Bool {
        if let p = self.port, p != port { return false }
        switch target {
        case .name(let n): return Self.normalized(host) == n
        case .wildcard(let suffix):
            let h = Self.normalized(host)
            return h.hasSuffix("." + suffix) && IPAddress(h) == nil
        case .network(let prefix, let bits):
            guard let bytes = address?.bytes, bytes.count == prefix.count else { return false }
            return Self.masked(bytes, bits) == prefix
        }
    }

    /// `host` in lower case without a trailing dot (how rules and maps store names).
    public static func normalized(_ host: String) -> String {
        var h = host.lowercased()
        if h.hasSuffix(".") { h.removeLast() }
        return h
    }

    static func masked(_ bytes: [UInt8], _ bits: Int) -> [UInt8] {
        var left = bits
        return bytes.map { b in
            let take = max(0, min(8, left))
            left -= take
            return take == 0 ? 0 : b & UInt8(truncatingIfNeeded: 0xFF << (8 - take))
        }
    }

    /// LDH labels of 1 to 63 characters, at most 253 in all (RFC 1123), not all-numeric at the end.
    static func isHostName(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= 253 else { return false }
        let labels = name.split(separator: ".", omittingEmptySubsequences: false)
        for label in labels {
            guard (1...63).contains(label.utf8.count), label.first != "-", label.last != "-",
                  label.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D || $0 == 0x5F })
            else { return false }
        }
        return !(labels.last?.allSatisfy(\.isNumber) ?? true)
    }
}

/// What the egress policy says about one connection: allowed (to which address, by which rule) or
/// denied (with a reason an agent can act on).
public enum EgressDecision: Sendable, Equatable {
    case allow(address: IPAddress, rule: String)
    case deny(reason: String)

    public var isAllowed: Bool { if case .allow = self { return true } else { return false } }
}

/// The one egress decision function (proxy, DNS answers, the WASM backend's `http.get`): a profile's
/// allowlist, the always-blocked ranges, and the operator's own name → address map (`serve
/// --resolve name=ADDR`), which is the only way to reach a blocked range on purpose.
public struct EgressPolicy: Sendable, Equatable {
    public var mode: NetworkPolicy.Mode
    public var rules: [AllowRule]
    /// Names the operator mapped (lower case, no trailing dot); they may point into blocked ranges.
    public var operatorMap: [String: IPAddress]
    /// The profile's name, for denial messages.
    public var profile: String
    /// The operator's `--resolve-for-cidr-rules`: whether a name that only an address (CIDR) rule
    /// could allow is looked up. Off by default: looking a name up sends it to the host's resolver
    /// and beyond, so `<data>.attacker.example` would leave the host as a DNS query.
    public var resolveForAddressRules: Bool

    /// Parses every rule of `network` (the first bad entry is an error naming it).
    public init(network: NetworkPolicy, profile: String, operatorMap: [String: IPAddress] = [:],
                resolveForAddressRules: Bool = false) throws(SandboxError) {
        mode = network.mode
        var parsed: [AllowRule] = []
        for entry in network.allow { parsed.append(try AllowRule(entry)) }
        rules = parsed
        self.profile = profile
        self.operatorMap = Dictionary(operatorMap.map { (AllowRule.normalized($0.key), $0.value) }, uniquingKeysWith: { a, _ in a })
        self.resolveForAddressRules = resolveForAddressRules
    }

    /// The variable `serve`/`run` set from `--resolve-for-cidr-rules` for their child processes
    /// (the WASM backend's `http.get` reads it): `1` when on.
    public static let resolveForAddressRulesVariable = "SANDBOXER_RESOLVE_FOR_CIDR_RULES"

    /// Whether `$SANDBOXER_RESOLVE_FOR_CIDR_RULES` turns ``resolveForAddressRules`` on.
    public static func environmentResolvesForAddressRules(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        environment[resolveForAddressRulesVariable] == "1"
    }

    /// Whether deciding a connection to `host` on `port` may look the name up (the one question
    /// every resolver asks before `getaddrinfo`): never for address literals, operator-mapped
    /// names or mode deny; for a name only when a name or wildcard rule could allow it (or mode
    /// open), or — with ``resolveForAddressRules`` — when an address rule could.
    public func mayLookUp(_ host: String, port: UInt16) -> Bool {
        let name = AllowRule.normalized(host)
        guard mode != .deny, operatorMap[name] == nil, IPAddress(Self.unbracketed(name)) == nil else { return false }
        return namesAllow(name, port: port) || (resolveForAddressRules && hasAddressRules)
    }

    /// Whether any rule is an address (CIDR) rule.
    public var hasAddressRules: Bool {
        rules.contains { rule in if case .network = rule.target { return true } else { return false } }
    }

    /// An IPv6 literal without its brackets (`[::1]` → `::1`); anything else as is.
    public static func unbracketed(_ name: String) -> String {
        name.hasPrefix("[") && name.hasSuffix("]") ? String(name.dropFirst().dropLast()) : name
    }

    /// The `NAME=ADDR` entries of `$SANDBOXER_RESOLVE` (comma- or space-separated), which `serve`
    /// also sets from `--resolve` for its child processes.
    public static func environmentEntries(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> [String] {
        (environment["SANDBOXER_RESOLVE"] ?? "").split(whereSeparator: { $0 == "," || $0 == " " }).map(String.init)
    }

    /// Whether a rule could allow the name `host` before any lookup: open mode, or a name or
    /// wildcard rule for it (on `port`; nil: on any port). Address rules need the lookup.
    public func namesAllow(_ host: String, port: UInt16?) -> Bool {
        switch mode {
        case .deny: return false
        case .open: return true
        case .allowlist:
            let name = AllowRule.normalized(host)
            return rules.contains { rule in
                if case .network = rule.target { return false }
                return rule.matches(host: name, address: nil, port: port ?? rule.port ?? 0)
            }
        }
    }

    /// Parses `--resolve name=ADDR` entries; a bad one is an error naming it.
    public static func operatorMap(_ entries: [String]) throws(SandboxError) -> [String: IPAddress] {
        var map: [String: IPAddress] = [:]
        for entry in entries {
            let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, AllowRule.isHostName(AllowRule.normalized(parts[0])), let ip = IPAddress(parts[1]) else {
                throw SandboxError(.invalidRequest, "--resolve '\(entry)': give NAME=ADDRESS, e.g. pypi.test=127.0.0.1")
            }
            map[AllowRule.normalized(parts[0])] = ip
        }
        return map
    }

    /// Decides a connection to `host` (a name or an address literal) on `port`. `resolved` are the
    /// addresses a name resolved to (ignored for literals and operator-mapped names).
    public func decide(host: String, port: UInt16, resolved: [IPAddress]) -> EgressDecision {
        let name = AllowRule.normalized(host)
        let target = "\(name):\(port)"
        guard mode != .deny else {
            return .deny(reason: "\(target) denied: profile '\(profile)' has network mode deny (no egress)")
        }
        let literal = IPAddress(Self.unbracketed(name))
        let mapped = operatorMap[name]
        // Addresses a name resolved to count only where it may be looked up at all.
        let candidates = mapped.map { [$0] } ?? literal.map { [$0] } ?? (mayLookUp(name, port: port) ? resolved : [])
        guard !candidates.isEmpty else {
            if namesAllow(name, port: port) { return .deny(reason: "\(target) denied: the name did not resolve") }
            if hasAddressRules && !resolveForAddressRules {
                return .deny(reason: "\(target) denied: no name rule of profile '\(profile)' allows it, and names are not looked up for address (CIDR) rules (the lookup itself would leak the name); connect to an address literal, add the name to network.allow, or the operator starts the server with --resolve-for-cidr-rules")
            }
            return .deny(reason: "\(target) denied: no rule of profile '\(profile)' allows it (allow: \(rules.map(\.text).joined(separator: ", ")))")
        }
        var blockedReason: String?
        for address in candidates {
            let rule = mode == .open ? "open" : rules.first(where: { $0.matches(host: name, address: address, port: port) })?.text
            guard let rule else { continue }
            if mapped == nil, let range = AddressPolicy.blockedRange(address) {
                blockedReason = "\(target) denied: \(address) is in an always-blocked range (\(range)); only the operator can map a name there (serve --resolve)"
                continue
            }
            return .allow(address: address, rule: rule)
        }
        return .deny(reason: blockedReason ?? "\(target) denied: no rule of profile '\(profile)' allows it (allow: \(rules.map(\.text).joined(separator: ", ")))")
    }
}
