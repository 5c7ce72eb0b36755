import Foundation
import SandboxCore

/// The warm pool: per profile name, sandboxes created ahead (host resources made, agent up) and
/// handed to the next create of that profile, so a create costs a store write instead of a
/// container start. Pool sandboxes belong to no tenant and have no record until handed out; a
/// crash leaves them as orphans that the next start-up collects.
extension SandboxManager {
    /// Takes a ready sandbox of the profile, and starts refilling.
    func takeFromPool(_ profileName: String) -> SandboxHandle? {
        guard var ready = pool[profileName], !ready.isEmpty else { return nil }
        let h = ready.removeFirst()
        pool[profileName] = ready
        refillPool()
        return h
    }

    /// Starts the filler unless it runs already: one owned task tops every profile up to its size.
    func refillPool() {
        guard poolFiller == nil, !configuration.warmPool.isEmpty else { return }
        poolFiller = Task { [weak self] in
            await self?.fillPool()
            await self?.fillerDone()
        }
    }

    func fillerDone() { poolFiller = nil }

    func fillPool() async {
        for (name, size) in configuration.warmPool.sorted(by: { $0.key < $1.key }) {
            let profile: Profile
            do { profile = try configuration.profiles.load(name) } catch {
                logger.error("warm pool: unknown profile", metadata: ["profile": "\(name)", "error": "\(error)"])
                continue
            }
            guard let backend = backends[profile.isolation] else { continue }
            while (pool[name]?.count ?? 0) < size, !Task.isCancelled {
                do {
                    var spec = SandboxSpec(profile: profile)
                    spec.expiresAt = Date().addingTimeInterval(configuration.poolLease.seconds)
                    let h = try await backend.create(spec)
                    if Task.isCancelled {
                        try? await backend.destroy(h)
                        return
                    }
                    pool[name, default: []].append(h)
                } catch {
                    if Task.isCancelled { return }  // the server is stopping: not a failure
                    logger.error("warm pool: create failed", metadata: ["profile": "\(name)", "error": "\(error)"])
                    break
                }
            }
        }
    }

    /// Ready sandboxes per profile name (for tests and `/metrics`).
    public var poolSizes: [String: Int] { pool.mapValues(\.count) }

    /// The ids of the ready sandboxes per profile name (for tests).
    public var poolSandboxIds: [String: [String]] { pool.mapValues { $0.map(\.id) } }
}
