import Foundation
import SandboxCore
import Synchronization

/// The API keys this process authenticated lately, remembered by their SHA-256:
///
/// - **Trusted for ``trust`` (1 s) after a store check**, so a client's requests do not each read
///   the store (every request authenticates). A revocation through this same store object applies
///   at once here (``forget(keyID:)``, and a check that was under way when it happened is not
///   remembered); one made elsewhere — `sandboxer key revoke` on the data directory (the HTTP API
///   has no revoke route), another node of a fleet — applies here within ``trust``.
/// - **Accepted during an outage** for ``freshness`` after their last successful check, so callers
///   whose key was good minutes ago keep working while the store is unreachable (their live
///   sandboxes must not stop answering because the database restarts); a revocation made elsewhere
///   in the last minutes before an outage is the window this leaves (a revocation during the outage
///   cannot be stored anyway).
public final class KnownKeys: Sendable {
    /// How long after its last check a key is still accepted during an outage.
    public static let freshness: TimeInterval = 600
    /// How long after its last check a key is accepted without asking the store (the bound on a
    /// revocation made elsewhere).
    public static let trust: Duration = .seconds(1)
    /// Keys remembered at most (the table is emptied when it grows past this).
    static let capacity = 10_000

    private struct Known: Sendable {
        var record: APIKeyRecord
        /// The last successful check (wall clock, for ``KnownKeys/freshness``) and its monotonic time (for ``KnownKeys/trust``).
        var at: Date
        var checked: ContinuousClock.Instant
    }
    private struct Table: Sendable {
        var keys: [Data: Known] = [:]
        /// Bumped by every local revocation: a check that began before one is not remembered.
        var generation: UInt64 = 0
    }
    private let table = Mutex(Table())

    public init() {}

    /// Authenticates through `check` (the store); on an outage, answers from the keys checked in
    /// the last ``freshness`` seconds, else rethrows the outage.
    public func authenticate(_ key: String, _ check: () async throws -> APIKeyRecord?) async throws -> APIKeyRecord? {
        let hash = APIKeyText.hash(key)
        let now = ContinuousClock.now
        let (trusted, generation) = table.withLock { t -> (APIKeyRecord?, UInt64) in
            guard let known = t.keys[hash], now - known.checked < Self.trust else { return (nil, t.generation) }
            return (known.record, t.generation)
        }
        if let trusted { return trusted }
        do {
            let record = try await check()
            table.withLock { t in
                if let record {
                    guard t.generation == generation else { return }  // revoked here meanwhile: ask again next time
                    if t.keys.count >= Self.capacity { t.keys.removeAll(keepingCapacity: true) }
                    t.keys[hash] = Known(record: record, at: Date(), checked: now)
                } else {
                    t.keys.removeValue(forKey: hash)
                }
            }
            return record
        } catch where StoreHealth.isOutage(error) {
            guard let known = table.withLock({ $0.keys[hash] }), Date().timeIntervalSince(known.at) < Self.freshness else { throw error }
            return known.record
        }
    }

    /// A key was revoked through this store: it is not accepted from memory any more, neither
    /// trusted nor during an outage.
    public func forget(keyID: String) {
        table.withLock { t in
            t.generation &+= 1
            t.keys = t.keys.filter { $0.value.record.id != keyID }
        }
    }
}
