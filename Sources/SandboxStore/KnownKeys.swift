import Foundation
import SandboxCore
import Synchronization

/// The API keys this process authenticated lately, so callers whose key was good minutes ago keep
/// working while the store is unreachable (their live sandboxes must not stop answering because
/// the database restarts). Only an outage falls back on it: whenever the store answers, it decides,
/// so a revocation applies at once. A key is remembered by its SHA-256 for ``freshness`` after its
/// last successful check; a revocation made elsewhere in the last minutes before an outage is the
/// window this leaves (a revocation during the outage cannot be stored anyway).
public final class KnownKeys: Sendable {
    /// How long after its last check a key is still accepted during an outage.
    public static let freshness: TimeInterval = 600
    /// Keys remembered at most (the table is emptied when it grows past this).
    static let capacity = 10_000

    private let keys = Mutex<[Data: (record: APIKeyRecord, at: Date)]>([:])

    public init() {}

    /// Authenticates through `check` (the store); on an outage, answers from the keys checked in
    /// the last ``freshness`` seconds, else rethrows the outage.
    public func authenticate(_ key: String, _ check: () async throws -> APIKeyRecord?) async throws -> APIKeyRecord? {
        let hash = APIKeyText.hash(key)
        do {
            let record = try await check()
            keys.withLock { k in
                if let record {
                    if k.count >= Self.capacity { k.removeAll(keepingCapacity: true) }
                    k[hash] = (record, Date())
                } else {
                    k.removeValue(forKey: hash)
                }
            }
            return record
        } catch where StoreHealth.isOutage(error) {
            guard let known = keys.withLock({ $0[hash] }), Date().timeIntervalSince(known.at) < Self.freshness else { throw error }
            return known.record
        }
    }
}
