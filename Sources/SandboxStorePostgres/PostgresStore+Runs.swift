import Foundation
import PostgresNIO
import SandboxCore
import SandboxStore

/// Submitting, reading, cancelling and retrying runs. Each run is its JSON document (`doc`, the
/// same as SQLite's) beside the columns the queue selects and orders by; the lease and the cancel
/// flag live only in their columns (a heartbeat touches no document). Every change is announced
/// with `pg_notify` in the transaction that makes it.
extension PostgresStore {
    /// Submits are serialized per tenant by an advisory lock, so the idempotency check and the
    /// queue quota hold across the fleet: a concurrent duplicate gets the first run back.
    public func submitRun(_ run: RunRecord, maxQueued: Int) async throws -> (run: RunRecord, created: Bool) {
        let logger = self.logger
        let doc = try JSONColumn.encode(run)
        let labels = try JSONColumn.encode(run.labels)
        return try await transaction("queueing run \(run.id)") { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(LockSpace.submit), hashtext(\(run.tenantId)))", logger: logger)
            if let key = run.idempotencyKey,
               let row = try await connection.rows("SELECT * FROM runs WHERE tenant_id = \(run.tenantId) AND idempotency_key = \(key)", logger).first {
                return (try Self.run(from: row), false)
            }
            let queued = try await connection.rows(
                "SELECT count(*) AS n FROM runs WHERE state = 'queued' AND tenant_id = \(run.tenantId)", logger
            ).first?.get("n", as: Int.self) ?? 0
            if queued >= maxQueued { throw RunRules.queueFull(queued: queued, max: maxQueued) }
            try await connection.query(
                """
                INSERT INTO runs (id, tenant_id, state, priority, created_at, ended_at, not_before, idempotency_key,
                    lease_worker, lease_expires_at, cancel_requested, webhook_state, webhook_next_at, labels, doc)
                VALUES (\(run.id), \(run.tenantId), \(run.state.rawValue), \(run.priority), \(run.createdAt.column), \(run.endedAt?.column),
                    \(run.notBefore.column), \(run.idempotencyKey), \(run.lease?.worker), \(run.lease?.expiresAt.column), \(run.cancelRequested),
                    \(run.webhook?.state.rawValue), \(run.webhook?.nextAt?.column), \(labels)::jsonb, \(doc))
                """, logger: logger)
            try await Self.notify(RunChange(kind: .ready, runId: run.id, tenantId: run.tenantId, state: run.state), on: connection, logger: logger)
            return (run, true)
        }
    }

    public func run(id: String) async throws -> RunRecord? {
        try await fetch("reading run \(id)", "SELECT * FROM runs WHERE id = \(id)", Self.run(from:)).first
    }

    /// A tenant's runs newest first (by creation time, then id), paged as ``SQLiteStore`` pages them.
    public func runs(_ query: RunQuery) async throws -> Page<RunRecord> {
        let limit = min(max(query.limit, 1), 1000)
        let sql = try Listing(
            table: "runs", columns: "*", tenantId: query.tenantId, states: query.states?.map(\.rawValue), since: query.since,
            pairsColumn: "labels", pairs: query.labels, cursor: query.cursor, newestFirst: true, limit: limit
        ).query()
        let logger = self.logger
        let records = try await rows("listing runs of tenant \(query.tenantId)", sql)
            .compactMap { row -> RunRecord? in
                do { return try Self.run(from: row) } catch {
                    logger.error("a run record cannot be read; skipped", metadata: ["id": "\((try? row.get("id", as: String.self)) ?? "?")", "error": "\(error)"])
                    return nil
                }
            }
        return Page.of(records, limit: limit) { PageCursor(createdAt: $0.createdAt.column, id: $0.id) }
    }

    public func cancelRun(tenantId: String, id: String) async throws -> RunRecord {
        let logger = self.logger
        return try await transaction("cancelling run \(id)") { connection in
            guard let row = try await connection.rows("SELECT * FROM runs WHERE id = \(id) AND tenant_id = \(tenantId) FOR UPDATE", logger).first
            else { throw RunRules.notFound(id) }
            var run = try Self.run(from: row)
            switch run.state {
            case .queued: try RunRules.cancelQueued(&run)
            case .running: run.cancelRequested = true
            default: throw RunRules.alreadyEnded(run)
            }
            try await Self.update(run, on: connection, logger)
            let change = RunChange(kind: run.state == .running ? .cancel : .state, runId: run.id, tenantId: run.tenantId, state: run.state)
            try await Self.notify(change, on: connection, logger: logger)
            return run
        }
    }

    public func retryRun(tenantId: String, id: String, maxQueued: Int) async throws -> RunRecord {
        let logger = self.logger
        return try await transaction("retrying run \(id)") { connection in
            // The same per-tenant serialization and queue quota as a submit.
            try await connection.query("SELECT pg_advisory_xact_lock(\(LockSpace.submit), hashtext(\(tenantId)))", logger: logger)
            guard let row = try await connection.rows("SELECT * FROM runs WHERE id = \(id) AND tenant_id = \(tenantId) FOR UPDATE", logger).first
            else { throw RunRules.notFound(id) }
            var run = try Self.run(from: row)
            guard run.state.isFinal else { throw RunRules.notEnded(run) }
            let queued = try await connection.rows(
                "SELECT count(*) AS n FROM runs WHERE state = 'queued' AND tenant_id = \(tenantId)", logger
            ).first?.get("n", as: Int.self) ?? 0
            if queued >= maxQueued { throw RunRules.queueFull(queued: queued, max: maxQueued) }
            try RunRules.retry(&run)
            try await Self.update(run, on: connection, logger)
            try await Self.notify(RunRules.change(run), on: connection, logger: logger)
            return run
        }
    }

    // MARK: Rows

    /// Writes every column of `run` (same id).
    static func update(_ run: RunRecord, on connection: PostgresConnection, _ logger: Logger) async throws {
        let doc = try JSONColumn.encode(run)
        let labels = try JSONColumn.encode(run.labels)
        try await connection.query(
            """
            UPDATE runs SET tenant_id = \(run.tenantId), state = \(run.state.rawValue), priority = \(run.priority),
                created_at = \(run.createdAt.column), ended_at = \(run.endedAt?.column), not_before = \(run.notBefore.column),
                idempotency_key = \(run.idempotencyKey), lease_worker = \(run.lease?.worker),
                lease_expires_at = \(run.lease?.expiresAt.column), cancel_requested = \(run.cancelRequested),
                webhook_state = \(run.webhook?.state.rawValue), webhook_next_at = \(run.webhook?.nextAt?.column),
                labels = \(labels)::jsonb, doc = \(doc)
            WHERE id = \(run.id)
            """, logger: logger)
    }

    /// The document, with the lease and the cancel flag from their columns.
    static func run(from row: PostgresRandomAccessRow) throws -> RunRecord {
        var run = try JSONColumn.decode(RunRecord.self, text: try row.get("doc"), what: "a run record")
        if let worker = try row.get("lease_worker", as: String?.self), let expires = try row.dateIfPresent("lease_expires_at") {
            run.lease = RunLease(worker: worker, expiresAt: expires)
        } else {
            run.lease = nil
        }
        run.cancelRequested = try row.get("cancel_requested")
        return run
    }
}
