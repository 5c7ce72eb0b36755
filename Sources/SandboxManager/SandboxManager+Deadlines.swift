import Foundation
import SandboxCore
import SandboxStore

/// A sandbox's own end: every long-lived sandbox is created knowing when it ends itself (its TTL
/// plus ``SandboxManager/Configuration/expiryGrace``; a warm-pool sandbox after
/// ``SandboxManager/Configuration/poolLease``), and a live server moves that on with every health
/// pass (running sandboxes through the health check's own `hello`, pool sandboxes here). A
/// server stopped for good (or whose data directory is gone) therefore leaves nothing running
/// past a sandbox's TTL and grace; the next start collects what is left on the host.
extension SandboxManager {
    /// The agent's deadline for a record: its TTL plus the grace.
    func agentDeadline(_ record: SandboxRecord) -> Date? {
        record.expiresAt.map { $0.addingTimeInterval(configuration.expiryGrace.seconds) }
    }

    /// Moves on the deadline of every warm-pool sandbox (running sandboxes get theirs with the
    /// health check's `hello`).
    func renewPoolDeadlines() async {
        let until = Date().addingTimeInterval(configuration.poolLease.seconds)
        for (name, handles) in pool {
            for h in handles {
                guard let backend = backends[h.spec.profile.isolation] else { continue }
                do { try await backend.renew(h, until: until) } catch {
                    logger.debug("warm pool: a sandbox did not take its renewal", metadata: ["profile": "\(name)", "id": "\(h.id)", "error": "\(error)"])
                }
            }
        }
    }

    /// Sends one sandbox its deadline (nothing when it has none).
    func renewDeadline(_ handle: SandboxHandle, backend: any LiveSandboxBackend) async {
        guard let until = handle.spec.expiresAt else { return }
        do { try await backend.renew(handle, until: until) } catch {
            logger.debug("a sandbox did not take its renewal", metadata: ["id": "\(handle.id)", "error": "\(error)"])
        }
    }
}
