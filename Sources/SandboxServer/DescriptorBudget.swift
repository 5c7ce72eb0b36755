import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The server's file descriptors: the limit is raised to the hard limit at start, and a reserve of
/// it is kept from the listener for the server's own work (agent connections, the store, cgroup
/// and state files, egress proxies), so a flood of connections cannot starve them.
public enum DescriptorBudget {
    /// Raises RLIMIT_NOFILE's soft limit to its hard limit (where allowed) and returns the soft
    /// limit now in force.
    @discardableResult
    public static func raiseLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        return limit.rlim_cur > rlim_t(Int32.max) ? Int(Int32.max) : Int(limit.rlim_cur)
    }

    /// The soft RLIMIT_NOFILE now in force.
    public static var currentLimit: Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        return limit.rlim_cur > rlim_t(Int32.max) ? Int(Int32.max) : Int(limit.rlim_cur)
    }

    /// Descriptors kept from the listener out of `limit`: half of it, at least 64.
    public static func reserve(for limit: Int) -> Int { max(64, limit / 2) }
}
