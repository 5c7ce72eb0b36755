#if canImport(Glibc)
import Glibc
#endif

/// An IP address as its network-order bytes: 4 for IPv4, 16 for IPv6.
public struct IPAddress: Sendable, Hashable, CustomStringConvertible {
    public let bytes: [UInt8]

    /// An IPv4 address from its four bytes (`1.2.3.4` = `[1, 2, 3, 4]`).
    public init(v4 a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) { bytes = [a, b, c, d] }

    /// Raw bytes; nil unless there are exactly 4 or 16.
    public init?(bytes: [UInt8]) {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    /// Parses dotted IPv4 or textual IPv6 (`inet_pton`); nil for anything else, names included.
    public init?(_ text: String) {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            bytes = withUnsafeBytes(of: &v4) { Array($0) }
            return
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            bytes = withUnsafeBytes(of: &v6) { Array($0) }
            return
        }
        return nil
    }

    /// The address inside a `sockaddr_in`/`sockaddr_in6`; nil for other families.
    public init?(_ address: UnsafePointer<sockaddr>) {
        switch Int32(address.pointee.sa_family) {
        case AF_INET:
            bytes = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { p in
                withUnsafeBytes(of: p.pointee.sin_addr) { Array($0) }
            }
        case AF_INET6:
            bytes = address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { p in
                withUnsafeBytes(of: p.pointee.sin6_addr) { Array($0) }
            }
        default:
            return nil
        }
    }

    public var isIPv4: Bool { bytes.count == 4 }

    public var description: String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let family = isIPv4 ? AF_INET : AF_INET6
        let ok = bytes.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &buffer, socklen_t(buffer.count)) } != nil
        return ok ? String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?"
    }

    /// The addresses `name` resolves to through `getaddrinfo` (blocking: call it off the cooperative
    /// pool), each once in the resolver's order; an address literal is itself. The failure is the
    /// resolver's reason.
    public static func lookup(_ name: String) -> Result<[IPAddress], LookupFailure> {
        if let literal = IPAddress(name) { return .success([literal]) }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(name, nil, &hints, &list)
        guard rc == 0, let first = list else { return .failure(LookupFailure(reason: String(cString: gai_strerror(rc)))) }
        defer { freeaddrinfo(first) }
        var addresses: [IPAddress] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let ai = cursor {
            if let sa = ai.pointee.ai_addr, let address = IPAddress(UnsafePointer(sa)), !addresses.contains(address) {
                addresses.append(address)
            }
            cursor = ai.pointee.ai_next
        }
        guard !addresses.isEmpty else { return .failure(LookupFailure(reason: "no IPv4 or IPv6 address")) }
        return .success(addresses)
    }

    /// Why ``lookup(_:)`` found nothing.
    public struct LookupFailure: Error, Sendable {
        public var reason: String
    }

    /// Calls `body` with a `sockaddr_in`/`sockaddr_in6` for this address and `port`.
    public func withSocketAddress<R>(port: UInt16, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        if isIPv4 {
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = port.bigEndian
            withUnsafeMutableBytes(of: &sa.sin_addr) { $0.copyBytes(from: bytes) }
            return withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
        var sa = sockaddr_in6()
        sa.sin6_family = sa_family_t(AF_INET6)
        sa.sin6_port = port.bigEndian
        withUnsafeMutableBytes(of: &sa.sin6_addr) { $0.copyBytes(from: bytes) }
        return withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
        }
    }
}

/// Which addresses sandboxer never connects to for a sandbox (the WASM backend's `http.get`, the egress
/// proxy), whatever the allowlist says — unless the operator mapped a name there on purpose: the host
/// itself (loopback and every address of its interfaces, public ones too), private and shared networks, link-local (cloud metadata), multicast and reserved space.
/// IPv6 forms that carry an IPv4 address (IPv4-mapped, NAT64, 6to4) are judged by that address.
public enum AddressPolicy {
    /// One blocked prefix: `bits` leading bits of `prefix`.
    public struct Range: Sendable, Equatable {
        public var prefix: [UInt8]
        public var bits: Int
        public var name: String

        public init(prefix: [UInt8], bits: Int, name: String) {
            self.prefix = prefix
            self.bits = bits
            self.name = name
        }

        public func contains(_ bytes: [UInt8]) -> Bool {
            guard bytes.count == prefix.count else { return false }
            var left = bits
            for i in 0..<bytes.count where left > 0 {
                let take = min(8, left)
                let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - take))
                if bytes[i] & mask != prefix[i] & mask { return false }
                left -= take
            }
            return true
        }
    }

    static let blockedIPv4: [Range] = [
        Range(prefix: [0, 0, 0, 0], bits: 8, name: "\"this network\" (0.0.0.0/8)"),
        Range(prefix: [10, 0, 0, 0], bits: 8, name: "private (10.0.0.0/8)"),
        Range(prefix: [100, 64, 0, 0], bits: 10, name: "carrier-grade NAT (100.64.0.0/10)"),
        Range(prefix: [127, 0, 0, 0], bits: 8, name: "loopback (127.0.0.0/8)"),
        Range(prefix: [169, 254, 0, 0], bits: 16, name: "link-local (169.254.0.0/16)"),
        Range(prefix: [172, 16, 0, 0], bits: 12, name: "private (172.16.0.0/12)"),
        Range(prefix: [192, 168, 0, 0], bits: 16, name: "private (192.168.0.0/16)"),
        Range(prefix: [224, 0, 0, 0], bits: 4, name: "multicast (224.0.0.0/4)"),
        // 240.0.0.0/4 includes the limited broadcast address 255.255.255.255.
        Range(prefix: [240, 0, 0, 0], bits: 4, name: "reserved (240.0.0.0/4, broadcast included)"),
    ]

    static func v6(_ head: [UInt8]) -> [UInt8] { head + [UInt8](repeating: 0, count: 16 - head.count) }

    static let blockedIPv6: [Range] = [
        // ::/96 holds the unspecified address ::, loopback ::1 and the deprecated IPv4-compatible form.
        Range(prefix: v6([]), bits: 96, name: "unspecified, loopback or IPv4-compatible (::/96)"),
        Range(prefix: v6([0xFE, 0x80]), bits: 10, name: "link-local (fe80::/10)"),
        Range(prefix: v6([0xFC]), bits: 7, name: "unique local (fc00::/7)"),
        Range(prefix: v6([0xFF]), bits: 8, name: "multicast (ff00::/8)"),
    ]

    /// Prefixes whose addresses embed an IPv4 address, and where it sits.
    static let embeddingIPv4: [(range: Range, offset: Int)] = [
        (Range(prefix: v6([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF]), bits: 96, name: "IPv4-mapped"), 12),
        (Range(prefix: v6([0, 0x64, 0xFF, 0x9B]), bits: 96, name: "NAT64"), 12),
        (Range(prefix: v6([0x20, 0x02]), bits: 16, name: "6to4"), 2),
    ]

    /// Why `address` is never reachable (the range's name, or the host interface it belongs to),
    /// or nil when it may be used.
    public static func blockedRange(_ address: IPAddress) -> String? {
        let bytes = address.bytes
        if address.isIPv4 {
            return blockedIPv4.first { $0.contains(bytes) }?.name ?? hostInterface(address)
        }
        for (range, offset) in embeddingIPv4 where range.contains(bytes) {
            let inner = IPAddress(v4: bytes[offset], bytes[offset + 1], bytes[offset + 2], bytes[offset + 3])
            return blockedRange(inner).map { "\(range.name) form of \(inner), \($0)" }
        }
        return blockedIPv6.first { $0.contains(bytes) }?.name ?? hostInterface(address)
    }

    /// "an address of this host (eth0)" when `address` is one of the host's own (``HostAddresses``).
    static func hostInterface(_ address: IPAddress) -> String? {
        HostAddresses.interface(of: address).map { "an address of this host (\($0))" }
    }

    /// Whether `address` is in an always-blocked range.
    public static func isBlocked(_ address: IPAddress) -> Bool { blockedRange(address) != nil }
}
