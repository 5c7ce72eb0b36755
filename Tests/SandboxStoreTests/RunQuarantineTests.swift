import Foundation
import RunStoreContract
import SandboxCore
import SandboxStore
import Testing

/// A run that kills its worker process is quarantined, not retried blindly (issue 17, item 5): a
/// queued `resources.cpus: 1e300` crashed the server on every restart until its attempts (up to
/// 20) ran out. Two attempts ended by their worker process dying make the run `dead` with a reason;
/// a graceful hand-back (the server shutting down) does not count.
@Suite struct RunQuarantineTests {
    static let noBackoff = RetryPolicy(base: .milliseconds(1), max: .milliseconds(1), jitter: 0)

    /// Claims the run as `worker` (after its backoff).
    static func claim(_ s: SQLiteStore, _ worker: String) async throws -> [RunRecord] {
        try await Task.sleep(for: .milliseconds(5))
        return try await s.claimRuns(worker: worker, limit: 1, tenantCap: 100, lease: .seconds(600))
    }

    @Test func aRunWhoseAttemptsKeepKillingTheirWorkerIsQuarantined() async throws {
        try await withStore { s, _ in
            let run = RunStoreContract.newRun(maxAttempts: 20)
            _ = try await s.submitRun(run, maxQueued: 10)

            // The server is stopped gracefully mid-run: the worker hands the run back itself.
            #expect(try await Self.claim(s, "node-1#a").map(\.id) == [run.id])
            let handedBack = try #require(try await s.finishAttempt(
                runId: run.id, worker: "node-1#a", AttemptEnd(outcome: .workerLost, reason: "this worker stopped mid-run (the server is shutting down)"),
                policy: Self.noBackoff))
            #expect(handedBack.state == .queued)

            // The server process dies mid-run (kill -9, a crash) and restarts: taken back, retried once.
            #expect(try await Self.claim(s, "node-1#b").map(\.id) == [run.id])
            let first = try await s.expireLeases(policy: Self.noBackoff, heldByPrefix: "node-1#")
            #expect(first.first?.state == .queued, "\(first)")

            // It dies again with this run running: quarantined, whatever attempts are left.
            #expect(try await Self.claim(s, "node-1#c").map(\.id) == [run.id])
            let second = try await s.expireLeases(policy: Self.noBackoff, heldByPrefix: "node-1#")
            let dead = try #require(second.first)
            #expect(dead.state == .dead && dead.attempts.count == 3 && dead.maxAttempts == 20)
            #expect(dead.reason?.contains("quarantined") == true, "\(dead.reason ?? "")")
            #expect(try await Self.claim(s, "node-1#d").isEmpty)

            // The tenant (or operator) can still run it once more on purpose.
            let retried = try await s.retryRun(tenantId: run.tenantId, id: run.id, maxQueued: 10)
            #expect(retried.state == .queued)
        }
    }
}
