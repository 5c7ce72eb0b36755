import Foundation
import PostgresNIO
import SandboxCore
import SandboxStore

/// Claims, leases and their expiry: the part of the queue several nodes race for.
extension PostgresStore {
    /// One transaction: the tenants with due runs are locked with `pg_try_advisory_xact_lock`
    /// (a tenant another node is claiming for right now is skipped, so its running count and cap
    /// stay exact; when every tenant is taken, this node waits for the fairest one), then each
    /// claim goes to the fairest locked tenant (``RunRules/fairest(_:running:cap:)``) and takes
    /// its best run with `FOR UPDATE SKIP LOCKED` (a run another transaction holds is passed over).
    public func claimRuns(worker: String, limit: Int, tenantCap: Int, lease: Duration) async throws -> [RunRecord] {
        guard limit > 0 else { return [] }
        let logger = self.logger
        return try await transaction("claiming runs for \(worker)") { connection in
            let now = Date()
            var waiting = try await Self.waiting(connection, now: now, among: nil, logger)
            guard !waiting.isEmpty else { return [] }
            let tenants = waiting.map(\.tenant)
            var locked = Set(try await connection.rows(
                "SELECT t FROM unnest(\(tenants)::text[]) AS t WHERE pg_try_advisory_xact_lock(\(LockSpace.claim), hashtext(t))", logger
            ).map { try $0.get("t", as: String.self) })
            if locked.isEmpty {
                let running = try await Self.running(connection, among: tenants, logger)
                guard let pick = RunRules.fairest(waiting, running: running, cap: tenantCap) else { return [] }
                try await connection.query("SELECT pg_advisory_xact_lock(\(LockSpace.claim), hashtext(\(pick)))", logger: logger)
                locked = [pick]
            }
            // Fresh statements after the locks: they see what other nodes committed meanwhile.
            waiting = try await Self.waiting(connection, now: now, among: Array(locked), logger)
            var running = try await Self.running(connection, among: Array(locked), logger)
            var claimed: [RunRecord] = []
            while claimed.count < limit {
                guard let pick = RunRules.fairest(waiting, running: running, cap: tenantCap) else { break }
                guard let row = try await connection.rows(
                    """
                    SELECT * FROM runs WHERE state = 'queued' AND tenant_id = \(pick) AND not_before <= \(now.column)
                    ORDER BY priority DESC, created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED
                    """, logger).first
                else {
                    waiting.removeAll { $0.tenant == pick }
                    continue
                }
                var run = try Self.run(from: row)
                try RunRules.claim(&run, worker: worker, lease: lease, now: now)
                try await Self.update(run, on: connection, logger)
                try await Self.notify(RunRules.change(run), on: connection, logger: logger)
                running[pick, default: 0] += 1
                claimed.append(run)
            }
            return claimed
        }
    }

    /// Tenants with a due queued run and their oldest one's creation time (only `among`, if given).
    static func waiting(_ connection: PostgresConnection, now: Date, among: [String]?, _ logger: Logger) async throws -> [(tenant: String, oldest: Double)] {
        try await connection.rows(
            """
            SELECT tenant_id, MIN(created_at) AS oldest FROM runs
            WHERE state = 'queued' AND not_before <= \(now.column) AND (\(among)::text[] IS NULL OR tenant_id = ANY(\(among)::text[]))
            GROUP BY tenant_id
            """, logger
        ).map { (try $0.get("tenant_id", as: String.self), try $0.get("oldest", as: Double.self)) }
    }

    /// Running runs per tenant among `tenants`.
    static func running(_ connection: PostgresConnection, among tenants: [String], _ logger: Logger) async throws -> [String: Int] {
        var running: [String: Int] = [:]
        for row in try await connection.rows(
            "SELECT tenant_id, count(*) AS n FROM runs WHERE state = 'running' AND tenant_id = ANY(\(tenants)::text[]) GROUP BY tenant_id", logger) {
            running[try row.get("tenant_id", as: String.self)] = try row.get("n", as: Int.self)
        }
        return running
    }

    public func renewLeases(worker: String, runIds: [String], lease: Duration) async throws -> LeaseRenewal {
        guard !runIds.isEmpty else { return LeaseRenewal() }
        let until = Date().addingTimeInterval(lease.seconds).column
        var renewal = LeaseRenewal()
        for (id, cancel) in try await fetch(
            "renewing the leases of \(worker)",
            """
            UPDATE runs SET lease_expires_at = \(until)
            WHERE state = 'running' AND lease_worker = \(worker) AND id = ANY(\(runIds)::text[])
            RETURNING id, cancel_requested
            """, { row in (try row.get("id", as: String.self), try row.get("cancel_requested", as: Bool.self)) }) {
            renewal.held.insert(id)
            if cancel { renewal.cancelRequested.insert(id) }
        }
        return renewal
    }

    public func finishAttempt(runId: String, worker: String, _ end: AttemptEnd, policy: RetryPolicy) async throws -> RunRecord? {
        let logger = self.logger
        return try await transaction("ending the attempt of run \(runId)") { connection in
            guard var run = try await Self.held(connection, runId, worker, logger) else { return nil }
            try RunRules.finish(&run, end, policy: policy)
            try await Self.update(run, on: connection, logger)
            try await Self.notify(RunRules.change(run), on: connection, logger: logger)
            return run
        }
    }

    public func handBack(runId: String, worker: String, until: Date, reason: String) async throws -> RunRecord? {
        let logger = self.logger
        return try await transaction("handing run \(runId) back to the queue") { connection in
            guard var run = try await Self.held(connection, runId, worker, logger) else { return nil }
            try RunRules.handBack(&run, until: until, reason: reason)
            try await Self.update(run, on: connection, logger)
            try await Self.notify(RunRules.change(run), on: connection, logger: logger)
            return run
        }
    }

    public func setAttemptSandbox(runId: String, worker: String, sandboxId: String) async throws {
        let logger = self.logger
        try await transaction("recording the sandbox of run \(runId)") { connection in
            guard var run = try await Self.held(connection, runId, worker, logger), !run.attempts.isEmpty else { return }
            run.attempts[run.attempts.count - 1].sandboxId = sandboxId
            try await Self.update(run, on: connection, logger)
        }
    }

    /// Rows another transaction holds (a worker finishing its attempt) are left to it.
    public func expireLeases(policy: RetryPolicy, heldByPrefix: String?) async throws -> [RunRecord] {
        let logger = self.logger
        return try await transaction("taking back expired leases") { connection in
            let now = Date()
            let rows = try await connection.rows(
                """
                SELECT * FROM runs WHERE state = 'running'
                AND (lease_expires_at < \(now.column) OR (\(heldByPrefix)::text IS NOT NULL AND starts_with(lease_worker, \(heldByPrefix)::text)))
                FOR UPDATE SKIP LOCKED
                """, logger)
            var changed: [RunRecord] = []
            for row in rows {
                var run = try Self.run(from: row)
                let restarted = heldByPrefix.map { run.lease?.worker.hasPrefix($0) ?? false } ?? false
                try RunRules.finish(&run, RunRules.workerLost(run, restarted: restarted), policy: policy, now: now)
                try await Self.update(run, on: connection, logger)
                try await Self.notify(RunRules.change(run), on: connection, logger: logger)
                changed.append(run)
            }
            return changed
        }
    }

    public func nextDueRun() async throws -> Date? {
        try await fetch("looking for the next due run", "SELECT MIN(not_before) AS t FROM runs WHERE state = 'queued'") { row in
            try row.dateIfPresent("t")
        }.first ?? nil
    }

    /// The running run `id`, locked, if `worker` holds its lease.
    static func held(_ connection: PostgresConnection, _ id: String, _ worker: String, _ logger: Logger) async throws -> RunRecord? {
        try await connection.rows(
            "SELECT * FROM runs WHERE id = \(id) AND state = 'running' AND lease_worker = \(worker) FOR UPDATE", logger
        ).first.map(Self.run(from:))
    }
}
