import Foundation
import PostgresNIO
import SandboxCore
import SandboxStore

/// Run logs, webhook bookkeeping and stats.
extension PostgresStore {
    /// Numbers the chunks after the attempt's last one (their `seq` is ignored) and keeps the head
    /// up to `cap` bytes of the attempt; appends to one attempt are serialized by an advisory lock.
    public func appendRunLog(runId: String, attempt: Int, chunks: [RunLogChunk], cap: Int) async throws {
        guard !chunks.isEmpty, cap > 0 else { return }
        let logger = self.logger
        try await transaction("appending output of run \(runId)") { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(LockSpace.runLog), hashtext(\("\(runId):\(attempt)")))", logger: logger)
            let last = try await connection.rows(
                "SELECT seq, end_offset FROM run_logs WHERE run_id = \(runId) AND attempt = \(attempt) ORDER BY seq DESC LIMIT 1", logger
            ).first
            var seq = try last?.get("seq", as: Int.self) ?? 0
            var end = try last?.get("end_offset", as: Int.self) ?? 0
            for chunk in chunks where end < cap && !chunk.data.isEmpty {
                let data = Data(chunk.data.prefix(cap - end))
                seq += 1
                end += data.count
                try await connection.query(
                    """
                    INSERT INTO run_logs (run_id, attempt, seq, stream, end_offset, data)
                    VALUES (\(runId), \(attempt), \(seq), \(chunk.stream.rawValue), \(end), \(data))
                    """, logger: logger)
            }
        }
    }

    public func runLog(runId: String, attempt: Int, afterSeq: Int) async throws -> [RunLogChunk] {
        try await fetch(
            "reading output of run \(runId)",
            "SELECT seq, stream, data FROM run_logs WHERE run_id = \(runId) AND attempt = \(attempt) AND seq > \(afterSeq) ORDER BY seq"
        ) { row in
            RunLogChunk(seq: try row.get("seq"), stream: StdStream(rawValue: try row.get("stream")) ?? .stdout, data: Array(try row.get("data", as: Data.self)))
        }
    }

    /// Due deliveries are locked with `FOR UPDATE SKIP LOCKED` and pushed `lease` into the future,
    /// so another node neither waits for them nor delivers them meanwhile.
    public func claimWebhooks(limit: Int, lease: Duration, perTenant: Int, busy: [String: Int]) async throws -> [RunRecord] {
        let logger = self.logger
        return try await transaction("claiming webhook deliveries") { connection in
            let now = Date()
            let full = WebhookClaim.full(perTenant: perTenant, busy: busy)
            let rows = try await connection.rows(
                """
                SELECT * FROM runs WHERE webhook_state = 'pending' AND webhook_next_at <= \(now.column)
                AND NOT (tenant_id = ANY(\(full)))
                ORDER BY webhook_next_at LIMIT \(WebhookClaim.candidates(limit: limit)) FOR UPDATE SKIP LOCKED
                """, logger)
            let picked = WebhookClaim.pick(try rows.map(Self.run(from:)), limit: limit, perTenant: perTenant, busy: busy)
            var claimed: [RunRecord] = []
            for candidate in picked {
                var run = candidate
                run.webhook?.nextAt = now.addingTimeInterval(lease.seconds)
                try await Self.update(run, on: connection, logger)
                claimed.append(run)
            }
            return claimed
        }
    }

    public func recordWebhookDelivery(_ delivery: WebhookDelivery, next: Date?) async throws {
        let logger = self.logger
        try await transaction("recording a webhook delivery of run \(delivery.runId)") { connection in
            try await connection.query(
                """
                INSERT INTO webhook_deliveries (run_id, number, at, status, error, duration_ms)
                VALUES (\(delivery.runId), \(delivery.number), \(delivery.at.column), \(delivery.status), \(delivery.error), \(delivery.durationMs))
                ON CONFLICT (run_id, number) DO UPDATE SET at = EXCLUDED.at, status = EXCLUDED.status, error = EXCLUDED.error,
                    duration_ms = EXCLUDED.duration_ms
                """, logger: logger)
            guard let row = try await connection.rows("SELECT * FROM runs WHERE id = \(delivery.runId) FOR UPDATE", logger).first else { return }
            var run = try Self.run(from: row)
            RunRules.record(&run, delivery, next: next)
            try await Self.update(run, on: connection, logger)
        }
    }

    public func webhookDeliveries(runId: String) async throws -> [WebhookDelivery] {
        try await fetch("reading webhook deliveries of run \(runId)", "SELECT * FROM webhook_deliveries WHERE run_id = \(runId) ORDER BY number") { row in
            WebhookDelivery(
                runId: try row.get("run_id"), number: try row.get("number"), at: try row.date("at"), status: try row.get("status"),
                error: try row.get("error"), durationMs: try row.get("duration_ms"))
        }
    }

    public func runStats(tenantId: String, since: Date) async throws -> RunStats {
        var stats = RunStats()
        for (state, n) in try await fetch(
            "counting runs of tenant \(tenantId)",
            "SELECT state, count(*) AS n FROM runs WHERE tenant_id = \(tenantId) AND state IN ('queued', 'running') GROUP BY state",
            { row in (try row.get("state", as: String.self), try row.get("n", as: Int.self)) }) {
            if state == "queued" { stats.queued = n } else { stats.running = n }
        }
        let minutes = try await fetch(
            "counting runs of tenant \(tenantId)",
            """
            SELECT floor(ended_at / 60)::bigint AS minute, state, count(*) AS n FROM runs
            WHERE tenant_id = \(tenantId) AND ended_at >= \(since.column) GROUP BY 1, 2 ORDER BY 1
            """
        ) { row in
            (minute: try row.get("minute", as: Int.self), state: RunState(rawValue: try row.get("state")) ?? .failed, count: try row.get("n", as: Int.self))
        }
        stats.minutes = RunRules.minutes(minutes)
        return stats
    }
}
