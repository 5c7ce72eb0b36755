import Foundation
import SandboxCore
import SandboxStore

/// How E2B's wire forms map onto sandboxer's: states, times, template ids, list filters.
extension E2BControl {
    /// E2B knows `running` and `paused`; a hibernated sandbox is paused, one being created running.
    static func state(of s: SandboxState) -> String {
        switch s {
        case .paused, .hibernated: "paused"
        default: "running"
        }
    }

    /// The states an E2B `state` filter (`running,paused`) selects.
    static func states(_ text: String) throws -> [SandboxState] {
        var states: [SandboxState] = []
        for part in text.split(separator: ",") {
            switch part {
            case "running": states += [.creating, .running]
            case "paused": states += [.paused, .hibernated]
            default: throw E2BAPIError(status: 400, message: "state: unknown state '\(part)'; one of: running, paused")
            }
        }
        return states.isEmpty ? [.creating, .running, .paused, .hibernated] : states
    }

    /// E2B's `metadata` filter: `k=v&k2=v2` with keys and values escaped once more (the SDKs
    /// quote each, then url-encode the pairs), so each is unescaped after the pairs are split.
    static func metadataFilter(_ text: String) throws -> [String: String] {
        var pairs: [String: String] = [:]
        for pair in text.split(separator: "&") where !pair.isEmpty {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, let key = unescape(String(parts[0])), let value = unescape(String(parts[1])),
                  let k = key.removingPercentEncoding, let v = value.removingPercentEncoding, !k.isEmpty else {
                throw E2BAPIError(status: 400, message: "metadata: must be key=value pairs joined by & (url-encoded)")
            }
            pairs[k] = v
        }
        return pairs
    }

    /// Form decoding of one part (`+` is a space).
    private static func unescape(_ s: String) -> String? {
        s.replacingOccurrences(of: "+", with: " ").removingPercentEncoding
    }

    /// RFC 3339 in UTC with milliseconds, as E2B's API writes times.
    static func time(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: TimeZone(identifier: "UTC")!))
    }

    /// The template id E2B's create named, or the template of a sandbox made through /v1.
    static func templateID(of r: SandboxRecord) -> String {
        r.envdAccess?.template ?? r.profile.template
    }
}

/// `Idempotency-Key` of E2B's create: a retry with the same key (same tenant, within a day, on
/// this server) answers the sandbox the first call created, and concurrent calls with one key
/// create one sandbox. Kept in memory: a restart forgets the keys.
actor E2BIdempotency {
    static let window: TimeInterval = 24 * 3600
    static let maxKeys = 10_000
    private var done: [String: (id: String, at: Date)] = [:]
    private var running: [String: Task<String, any Error>] = [:]

    /// The sandbox of the tenant's key, made by `create` when the key is new (or nil); `made` is
    /// true for the call whose `create` made it.
    func sandbox(tenantId: String, key: String?, create: @escaping @Sendable () async throws -> String) async throws -> (id: String, made: Bool) {
        guard let key, !key.isEmpty else { return (try await create(), true) }
        let slot = "\(tenantId)\u{0}\(key)"
        let now = Date()
        if let hit = done[slot], now.timeIntervalSince(hit.at) < Self.window { return (hit.id, false) }
        if let task = running[slot] { return (try await task.value, false) }
        let task = Task { try await create() }
        running[slot] = task
        defer { running[slot] = nil }
        let id = try await task.value
        if done.count >= Self.maxKeys { done = done.filter { now.timeIntervalSince($0.value.at) < Self.window } }
        if done.count < Self.maxKeys { done[slot] = (id, now) }
        return (id, true)
    }
}
