import Foundation
import Synchronization

/// Login attempts per client address over the last minute (a sliding window): the monitor's
/// login form takes API keys, so guessing at it is bounded (`429` with `Retry-After` beyond
/// `perMinute`). Addresses are forgotten once their window is empty; at most `capacity` are kept.
public final class LoginThrottle: Sendable {
    public let perMinute: Int
    let capacity: Int
    private let windows = Mutex<[String: [ContinuousClock.Instant]]>([:])

    public init(perMinute: Int = 20, capacity: Int = 10_000) {
        self.perMinute = max(1, perMinute)
        self.capacity = max(1, capacity)
    }

    /// Counts one attempt of `client`; nil when allowed, else the seconds until the next one is.
    func admit(_ client: String) -> Int? {
        let now = ContinuousClock.now
        return windows.withLock { w in
            if w.count >= capacity { w = w.filter { $0.value.contains { now - $0 < .seconds(60) } } }
            var times = w[client, default: []]
            times.removeAll { now - $0 >= .seconds(60) }
            if times.count >= perMinute, let oldest = times.first {
                w[client] = times
                return max(1, Int((Duration.seconds(60) - (now - oldest)).components.seconds) + 1)
            }
            if w.count >= capacity, w[client] == nil { return 60 }
            times.append(now)
            w[client] = times
            return nil
        }
    }
}
