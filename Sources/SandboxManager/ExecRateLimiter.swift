import Foundation
import SandboxCore
import Synchronization

/// Counts each tenant's execs over the last minute (a sliding window) against its quota.
final class ExecRateLimiter: Sendable {
    private let windows = Mutex<[String: [ContinuousClock.Instant]]>([:])

    /// Counts one exec, or throws `quota_exceeded` with the seconds until a slot frees up.
    func admit(tenantId: String, perMinute: Int) throws(SandboxError) {
        let now = ContinuousClock.now
        let wait: Int? = windows.withLock { w in
            var times = w[tenantId, default: []]
            times.removeAll { now - $0 >= .seconds(60) }
            if times.count >= perMinute, let oldest = times.first {
                w[tenantId] = times
                let left = Duration.seconds(60) - (now - oldest)
                return max(1, Int(left.components.seconds) + 1)
            }
            times.append(now)
            w[tenantId] = times
            return nil
        }
        if let wait {
            throw SandboxError(.quotaExceeded, "this tenant ran \(perMinute) execs in the last minute, its quota; retry in \(wait) s",
                               retryAfterSeconds: wait)
        }
    }
}
