import Foundation
import GRDB
import SandboxCore

/// The run queue on SQLite: one node. Each run is a JSON document (`doc`) plus the columns the
/// queue selects and orders by; the lease expiry and the cancel flag live in their columns (a
/// heartbeat touches no document). Writes are serialized by SQLite, so a claim is exclusive.
extension SQLiteStore: RunStore {
    public func runChanges() -> AsyncStream<RunChange> { changes.subscribe() }

    public func submitRun(_ run: RunRecord, maxQueued: Int) async throws -> (run: RunRecord, created: Bool) {
        let doc = try JSONColumn.encode(run)
        let (stored, created) = try await write("queueing run \(run.id)") { db -> (RunRecord, Bool) in
            if let key = run.idempotencyKey,
               let row = try Row.fetchOne(db, sql: "SELECT * FROM runs WHERE tenant_id = ? AND idempotency_key = ?", arguments: [run.tenantId, key]) {
                return (try Self.run(from: row), false)
            }
            let queued = try Int.fetchOne(db, sql: "SELECT count(*) FROM runs WHERE state = 'queued' AND tenant_id = ?", arguments: [run.tenantId]) ?? 0
            if queued >= maxQueued { throw RunRules.queueFull(queued: queued, max: maxQueued) }
            try db.execute(
                sql: """
                    INSERT INTO runs (id, tenant_id, state, priority, created_at, ended_at, not_before, idempotency_key,
                        lease_worker, lease_expires_at, cancel_requested, webhook_state, webhook_next_at, doc)
                    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
                    """, arguments: Self.arguments(run, doc: doc))
            return (run, true)
        }
        if created { changes.publish(RunChange(kind: .ready, runId: run.id, tenantId: run.tenantId, state: .queued)) }
        return (stored, created)
    }

    public func run(id: String) async throws -> RunRecord? {
        try await read("reading run \(id)") { db in
            try Row.fetchOne(db, sql: "SELECT * FROM runs WHERE id = ?", arguments: [id]).map(Self.run(from:))
        }
    }

    public func runs(_ query: RunQuery) async throws -> Page<RunRecord> {
        let limit = min(max(query.limit, 1), 1000)
        var sql = "SELECT * FROM runs WHERE tenant_id = ?"
        var args: [(any DatabaseValueConvertible)?] = [query.tenantId]
        if let states = query.states, !states.isEmpty {
            sql += " AND state IN (\(databaseQuestionMarks(count: states.count)))"
            args += states.map(\.rawValue)
        }
        if let since = query.since {
            sql += " AND created_at >= ?"
            args.append(since.column)
        }
        if let cursor = query.cursor {
            let before = try PageCursor.sqliteCondition(cursor, newestFirst: true)
            sql += before.sql
            args += before.args
        }
        for (key, value) in query.labels.sorted(by: { $0.key < $1.key }) {
            sql += " AND EXISTS (SELECT 1 FROM json_each(runs.doc, '$.labels') m WHERE m.key = ? AND m.value = ?)"
            args += [key, value]
        }
        sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
        args.append(limit + 1)
        let statementArgs = StatementArguments(args)
        let logger = self.logger
        let records = try await read("listing runs of tenant \(query.tenantId)") { [sql] db in
            try Row.fetchAll(db, sql: sql, arguments: statementArgs).compactMap { row -> RunRecord? in
                do { return try Self.run(from: row) } catch {
                    logger.error("a run record cannot be read; skipped", metadata: ["id": "\(row["id"] as String? ?? "?")", "error": "\(error)"])
                    return nil
                }
            }
        }
        return Page.of(records, limit: limit) { PageCursor(createdAt: $0.createdAt.column, id: $0.id) }
    }

    public func claimRuns(worker: String, limit: Int, tenantCap: Int, lease: Duration) async throws -> [RunRecord] {
        guard limit > 0 else { return [] }
        let claimed = try await write("claiming runs for \(worker)") { db -> [RunRecord] in
            let now = Date()
            var running: [String: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT tenant_id, count(*) AS n FROM runs WHERE state = 'running' GROUP BY tenant_id") {
                running[row["tenant_id"]] = row["n"]
            }
            var waiting: [(tenant: String, oldest: Double)] = try Row.fetchAll(
                db, sql: "SELECT tenant_id, MIN(created_at) AS oldest FROM runs WHERE state = 'queued' AND not_before <= ? GROUP BY tenant_id",
                arguments: [now.column]
            ).map { ($0["tenant_id"], $0["oldest"]) }
            var claimed: [RunRecord] = []
            while claimed.count < limit {
                guard let pick = RunRules.fairest(waiting, running: running, cap: tenantCap) else { break }
                guard let row = try Row.fetchOne(
                    db, sql: """
                        SELECT * FROM runs WHERE state = 'queued' AND tenant_id = ? AND not_before <= ?
                        ORDER BY priority DESC, created_at, id LIMIT 1
                        """, arguments: [pick, now.column])
                else {
                    waiting.removeAll { $0.tenant == pick }
                    continue
                }
                var run = try Self.run(from: row)
                try RunRules.claim(&run, worker: worker, lease: lease, now: now)
                try Self.update(db, run)
                running[pick, default: 0] += 1
                claimed.append(run)
            }
            return claimed
        }
        changes.publish(claimed.map { RunChange(kind: .state, runId: $0.id, tenantId: $0.tenantId, state: .running) })
        return claimed
    }

    public func renewLeases(worker: String, runIds: [String], lease: Duration) async throws -> LeaseRenewal {
        guard !runIds.isEmpty else { return LeaseRenewal() }
        let until = Date().addingTimeInterval(lease.seconds).column
        return try await write("renewing the leases of \(worker)") { db in
            let marks = databaseQuestionMarks(count: runIds.count)
            try db.execute(
                sql: "UPDATE runs SET lease_expires_at = ? WHERE state = 'running' AND lease_worker = ? AND id IN (\(marks))",
                arguments: StatementArguments([until, worker] as [any DatabaseValueConvertible] + runIds.map { $0 as any DatabaseValueConvertible }))
            var renewal = LeaseRenewal()
            for row in try Row.fetchAll(
                db, sql: "SELECT id, cancel_requested FROM runs WHERE state = 'running' AND lease_worker = ? AND id IN (\(marks))",
                arguments: StatementArguments([worker] + runIds)) {
                let id: String = row["id"]
                renewal.held.insert(id)
                if row["cancel_requested"] as Bool { renewal.cancelRequested.insert(id) }
            }
            return renewal
        }
    }

    public func finishAttempt(runId: String, worker: String, _ end: AttemptEnd, policy: RetryPolicy) async throws -> RunRecord? {
        let run = try await write("ending the attempt of run \(runId)") { db -> RunRecord? in
            guard var run = try Self.held(db, runId, worker) else { return nil }
            try RunRules.finish(&run, end, policy: policy)
            try Self.update(db, run)
            return run
        }
        if let run { changes.publish(RunRules.change(run)) }
        return run
    }

    public func handBack(runId: String, worker: String, until: Date, reason: String) async throws -> RunRecord? {
        let run = try await write("handing run \(runId) back to the queue") { db -> RunRecord? in
            guard var run = try Self.held(db, runId, worker) else { return nil }
            try RunRules.handBack(&run, until: until, reason: reason)
            try Self.update(db, run)
            return run
        }
        if let run { changes.publish(RunRules.change(run)) }
        return run
    }

    public func setAttemptSandbox(runId: String, worker: String, sandboxId: String) async throws {
        try await write("recording the sandbox of run \(runId)") { db in
            guard var run = try Self.held(db, runId, worker), !run.attempts.isEmpty else { return }
            run.attempts[run.attempts.count - 1].sandboxId = sandboxId
            try Self.update(db, run)
        }
    }

    public func cancelRun(tenantId: String, id: String) async throws -> RunRecord {
        let run = try await write("cancelling run \(id)") { db -> RunRecord in
            var run = try Self.owned(db, tenantId, id)
            switch run.state {
            case .queued: try RunRules.cancelQueued(&run)
            case .running: run.cancelRequested = true
            default: throw RunRules.alreadyEnded(run)
            }
            try Self.update(db, run)
            return run
        }
        changes.publish(RunChange(kind: run.state == .running ? .cancel : .state, runId: run.id, tenantId: run.tenantId, state: run.state))
        return run
    }

    public func retryRun(tenantId: String, id: String, maxQueued: Int) async throws -> RunRecord {
        let run = try await write("retrying run \(id)") { db -> RunRecord in
            var run = try Self.owned(db, tenantId, id)
            guard run.state.isFinal else { throw RunRules.notEnded(run) }
            let queued = try Int.fetchOne(db, sql: "SELECT count(*) FROM runs WHERE state = 'queued' AND tenant_id = ?", arguments: [tenantId]) ?? 0
            if queued >= maxQueued { throw RunRules.queueFull(queued: queued, max: maxQueued) }
            try RunRules.retry(&run)
            try Self.update(db, run)
            return run
        }
        changes.publish(RunRules.change(run))
        return run
    }

    public func expireLeases(policy: RetryPolicy, heldByPrefix: String?) async throws -> [RunRecord] {
        let changed = try await write("taking back expired leases") { db -> [RunRecord] in
            let now = Date()
            let rows = try Row.fetchAll(
                db, sql: """
                    SELECT * FROM runs WHERE state = 'running'
                    AND (lease_expires_at < ?1 OR (?2 IS NOT NULL AND substr(lease_worker, 1, length(?2)) = ?2))
                    """, arguments: [now.column, heldByPrefix])
            return try rows.map { row in
                var run = try Self.run(from: row)
                try RunRules.finish(&run, RunRules.workerLost(run, restarted: heldByPrefix.map { run.lease?.worker.hasPrefix($0) ?? false } ?? false),
                                policy: policy, now: now)
                try Self.update(db, run)
                return run
            }
        }
        changes.publish(changed.map(RunRules.change))
        return changed
    }

    public func nextDueRun() async throws -> Date? {
        try await read("looking for the next due run") { db in
            try Double.fetchOne(db, sql: "SELECT MIN(not_before) FROM runs WHERE state = 'queued'").map(Date.init(timeIntervalSinceReferenceDate:))
        }
    }

    // MARK: Logs

    /// Numbers the chunks after the attempt's last one (their `seq` is ignored) and keeps the
    /// head up to `cap` bytes of the attempt.
    public func appendRunLog(runId: String, attempt: Int, chunks: [RunLogChunk], cap: Int) async throws {
        guard !chunks.isEmpty, cap > 0 else { return }
        try await write("appending output of run \(runId)") { db in
            let last = try Row.fetchOne(
                db, sql: "SELECT seq, end_offset FROM run_logs WHERE run_id = ? AND attempt = ? ORDER BY seq DESC LIMIT 1",
                arguments: [runId, attempt])
            var seq: Int = try last?.decode(forColumn: "seq") ?? 0
            var end: Int = try last?.decode(forColumn: "end_offset") ?? 0
            for chunk in chunks where end < cap && !chunk.data.isEmpty {
                let data = Data(chunk.data.prefix(cap - end))
                seq += 1
                end += data.count
                try db.execute(
                    sql: "INSERT INTO run_logs (run_id, attempt, seq, stream, end_offset, data) VALUES (?, ?, ?, ?, ?, ?)",
                    arguments: [runId, attempt, seq, chunk.stream.rawValue, end, data])
            }
        }
    }

    public func runLog(runId: String, attempt: Int, afterSeq: Int) async throws -> [RunLogChunk] {
        try await read("reading output of run \(runId)") { db in
            try Row.fetchAll(
                db, sql: "SELECT seq, stream, data FROM run_logs WHERE run_id = ? AND attempt = ? AND seq > ? ORDER BY seq",
                arguments: [runId, attempt, afterSeq]
            ).map { row in
                RunLogChunk(seq: row["seq"], stream: StdStream(rawValue: row["stream"]) ?? .stdout, data: Array(row["data"] as Data))
            }
        }
    }

    // MARK: Webhooks

    public func claimWebhooks(limit: Int, lease: Duration, perTenant: Int, busy: [String: Int]) async throws -> [RunRecord] {
        try await write("claiming webhook deliveries") { db in
            let now = Date()
            let full = WebhookClaim.full(perTenant: perTenant, busy: busy)
            let skip = full.isEmpty ? "" : " AND tenant_id NOT IN (\(full.map { _ in "?" }.joined(separator: ", ")))"
            var arguments: StatementArguments = [now.column]
            arguments += StatementArguments(full)
            arguments += [WebhookClaim.candidates(limit: limit)]
            let rows = try Row.fetchAll(
                db, sql: "SELECT * FROM runs WHERE webhook_state = 'pending' AND webhook_next_at <= ?\(skip) ORDER BY webhook_next_at LIMIT ?",
                arguments: arguments)
            let picked = WebhookClaim.pick(try rows.map(Self.run(from:)), limit: limit, perTenant: perTenant, busy: busy)
            return try picked.map { candidate in
                var run = candidate
                run.webhook?.nextAt = now.addingTimeInterval(lease.seconds)
                try Self.update(db, run)
                return run
            }
        }
    }

    public func recordWebhookDelivery(_ delivery: WebhookDelivery, next: Date?) async throws {
        try await write("recording a webhook delivery of run \(delivery.runId)") { db in
            try db.execute(
                sql: "INSERT OR REPLACE INTO webhook_deliveries (run_id, number, at, status, error, duration_ms) VALUES (?, ?, ?, ?, ?, ?)",
                arguments: [delivery.runId, delivery.number, delivery.at.column, delivery.status, delivery.error, delivery.durationMs])
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM runs WHERE id = ?", arguments: [delivery.runId]) else { return }
            var run = try Self.run(from: row)
            RunRules.record(&run, delivery, next: next)
            try Self.update(db, run)
        }
    }

    public func webhookDeliveries(runId: String) async throws -> [WebhookDelivery] {
        try await read("reading webhook deliveries of run \(runId)") { db in
            try Row.fetchAll(db, sql: "SELECT * FROM webhook_deliveries WHERE run_id = ? ORDER BY number", arguments: [runId]).map { row in
                WebhookDelivery(
                    runId: row["run_id"], number: row["number"], at: try JSONColumn.date(row, "at"), status: row["status"],
                    error: row["error"], durationMs: row["duration_ms"])
            }
        }
    }

    public func runStats(tenantId: String, since: Date) async throws -> RunStats {
        try await read("counting runs of tenant \(tenantId)") { db in
            var stats = RunStats()
            for row in try Row.fetchAll(
                db, sql: "SELECT state, count(*) AS n FROM runs WHERE tenant_id = ? AND state IN ('queued', 'running') GROUP BY state",
                arguments: [tenantId]) {
                if row["state"] == "queued" { stats.queued = row["n"] } else { stats.running = row["n"] }
            }
            let rows = try Row.fetchAll(
                db, sql: """
                    SELECT CAST(ended_at / 60 AS INTEGER) AS minute, state, count(*) AS n FROM runs
                    WHERE tenant_id = ? AND ended_at >= ? GROUP BY minute, state ORDER BY minute
                    """, arguments: [tenantId, since.column])
            stats.minutes = RunRules.minutes(rows.map { (minute: $0["minute"], state: RunState(rawValue: $0["state"]) ?? .failed, count: $0["n"]) })
            return stats
        }
    }

    // MARK: Rows

    /// The running run `id` if `worker` holds its lease.
    static func held(_ db: Database, _ id: String, _ worker: String) throws -> RunRecord? {
        try Row.fetchOne(db, sql: "SELECT * FROM runs WHERE id = ? AND state = 'running' AND lease_worker = ?", arguments: [id, worker])
            .map(Self.run(from:))
    }

    /// The run `id` of `tenantId`; another tenant's is `not_found`.
    static func owned(_ db: Database, _ tenantId: String, _ id: String) throws -> RunRecord {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM runs WHERE id = ? AND tenant_id = ?", arguments: [id, tenantId]) else {
            throw RunRules.notFound(id)
        }
        return try run(from: row)
    }

    static func update(_ db: Database, _ run: RunRecord) throws {
        let doc = try JSONColumn.encode(run)
        try db.execute(
            sql: """
                UPDATE runs SET tenant_id = ?2, state = ?3, priority = ?4, created_at = ?5, ended_at = ?6, not_before = ?7,
                    idempotency_key = ?8, lease_worker = ?9, lease_expires_at = ?10, cancel_requested = ?11,
                    webhook_state = ?12, webhook_next_at = ?13, doc = ?14
                WHERE id = ?1
                """, arguments: arguments(run, doc: doc))
    }

    static func arguments(_ r: RunRecord, doc: String) -> StatementArguments {
        let values: [(any DatabaseValueConvertible)?] = [
            r.id, r.tenantId, r.state.rawValue, r.priority, r.createdAt.column, r.endedAt?.column, r.notBefore.column,
            r.idempotencyKey, r.lease?.worker, r.lease?.expiresAt.column, r.cancelRequested, r.webhook?.state.rawValue,
            r.webhook?.nextAt?.column, doc,
        ]
        return StatementArguments(values)
    }

    /// The document, with the lease expiry and cancel flag from their columns.
    static func run(from row: Row) throws -> RunRecord {
        let doc: String = try row.decode(forColumn: "doc")
        var run = try JSONDecoder().decode(RunRecord.self, from: Data(doc.utf8))
        if let worker: String = row["lease_worker"], let expires: Double = row["lease_expires_at"] {
            run.lease = RunLease(worker: worker, expiresAt: Date(timeIntervalSinceReferenceDate: expires))
        }
        run.cancelRequested = row["cancel_requested"] as Bool
        return run
    }
}
