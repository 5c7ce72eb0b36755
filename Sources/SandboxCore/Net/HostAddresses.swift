import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The addresses of this host's own interfaces (`getifaddrs`), which sandboxes never reach: a
/// service bound to 0.0.0.0 answers on each of them, public ones included. Read again when the
/// copy is older than ``maxAge``, so interfaces that come and go are followed.
public enum HostAddresses {
    /// How old the copy may be before a decision reads the interfaces again.
    public static let maxAge: Duration = .seconds(2)

    private static let cache = Mutex<(read: ContinuousClock.Instant, byAddress: [IPAddress: String])?>(nil)

    /// The interface `address` belongs to (e.g. `eth0`), or nil when it is no address of this host.
    public static func interface(of address: IPAddress) -> String? {
        current()[address]
    }

    /// Every address of every interface, with the interface's name.
    public static func current() -> [IPAddress: String] {
        let now = ContinuousClock.now
        if let c = cache.withLock({ $0 }), now - c.read < maxAge { return c.byAddress }
        let fresh = read()
        cache.withLock { $0 = (now, fresh) }
        return fresh
    }

    /// Reads the interfaces now (an empty table when getifaddrs fails: the fixed ranges still apply).
    static func read() -> [IPAddress: String] {
        var head: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&head) == 0, let first = head else { return [:] }
        defer { freeifaddrs(first) }
        var table: [IPAddress: String] = [:]
        var cursor: UnsafeMutablePointer<ifaddrs>? = first
        while let entry = cursor {
            if let sa = entry.pointee.ifa_addr, let address = IPAddress(UnsafePointer(sa)) {
                table[address] = entry.pointee.ifa_name.map { String(cString: $0) } ?? "?"
            }
            cursor = entry.pointee.ifa_next
        }
        return table
    }
}
