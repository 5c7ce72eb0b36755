import Foundation
import PostgresNIO
import SandboxCore
import SandboxStore

extension PostgresStore {
    public func appendUsage(_ samples: [UsageSample]) async throws {
        guard !samples.isEmpty else { return }
        let logger = self.logger
        try await transaction("storing \(samples.count) usage samples") { connection in
            for s in samples {
                try await connection.query(
                    """
                    INSERT INTO usage_samples (id, tenant_id, sandbox_id, at, sandbox_seconds, cpu_seconds, memory_gib_seconds,
                        egress_bytes_in, egress_bytes_out, execs)
                    VALUES (\(s.id), \(s.tenantId), \(s.sandboxId), \(s.at.column), \(s.sandboxSeconds), \(s.cpuSeconds),
                        \(s.memoryGiBSeconds), \(s.egressBytesIn), \(s.egressBytesOut), \(s.execs))
                    ON CONFLICT (id) DO NOTHING
                    """, logger: logger)
            }
        }
    }

    public func usage(_ q: UsageQuery) async throws -> [UsageGroup] {
        let limit = min(max(q.limit, 1), 100_000)
        let (since, until) = (q.since.column, q.until.column)
        var samples: [UsageGroup] = []
        if let key = Self.sampleKey(q.groupBy) {
            samples = try await fetch(
                "summing the usage of tenant \(q.tenantId)",
                """
                SELECT \(unescaped: key) AS k, sum(sandbox_seconds) AS ss, sum(cpu_seconds) AS cs, sum(memory_gib_seconds) AS ms,
                    sum(egress_bytes_in)::bigint AS bi, sum(egress_bytes_out)::bigint AS bo, sum(execs)::bigint AS ex
                FROM usage_samples WHERE tenant_id = \(q.tenantId) AND at >= \(since) AND at < \(until)
                GROUP BY k ORDER BY k LIMIT \(limit)
                """
            ) { row in
                var t = UsageTotals()
                t.sandboxSeconds = try row.get("ss", as: Double.self)
                t.cpuSeconds = try row.get("cs", as: Double.self)
                t.memoryGiBSeconds = try row.get("ms", as: Double.self)
                t.egressBytesIn = try row.get("bi", as: Int64.self)
                t.egressBytesOut = try row.get("bo", as: Int64.self)
                t.execs = try row.get("ex", as: Int64.self)
                return UsageGroup(key: try row.get("k", as: String.self), totals: t)
            }
        }
        var runs: [UsageGroup] = []
        if let key = Self.runKey(q.groupBy) {
            let wall = "coalesce((doc::jsonb #>> '{result,usage,wall_ms}')::double precision, 0)"
            let cpu = "coalesce((doc::jsonb #>> '{result,usage,cpu_ms}')::double precision, 0)"
            let peak = "coalesce((doc::jsonb #>> '{result,usage,peak_memory_bytes}')::double precision, 0)"
            runs = try await fetch(
                "summing the runs of tenant \(q.tenantId)",
                """
                SELECT \(unescaped: key) AS k, state, count(*)::bigint AS n, sum(\(unescaped: wall)) / 1000.0 AS ss,
                    sum(\(unescaped: cpu)) / 1000.0 AS cs, sum(\(unescaped: peak) / 1073741824.0 * \(unescaped: wall) / 1000.0) AS ms
                FROM runs WHERE tenant_id = \(q.tenantId) AND ended_at IS NOT NULL AND ended_at >= \(since) AND ended_at < \(until)
                GROUP BY k, state ORDER BY k LIMIT \(limit)
                """
            ) { row in
                var t = UsageTotals()
                t.sandboxSeconds = try row.get("ss", as: Double.self)
                t.cpuSeconds = try row.get("cs", as: Double.self)
                t.memoryGiBSeconds = try row.get("ms", as: Double.self)
                t.runs = [try row.get("state", as: String.self): try row.get("n", as: Int64.self)]
                return UsageGroup(key: try row.get("k", as: String.self), totals: t)
            }
        }
        return UsageMerge.merge(samples, runs, limit: limit)
    }

    /// The group key of a sample (nil: samples do not belong to such groups); a fixed expression.
    static func sampleKey(_ g: UsageGrouping) -> String? {
        switch g {
        case .day: return "to_char(to_timestamp(at + \(Date.timeIntervalBetween1970AndReferenceDate)) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
        case .sandbox: return "sandbox_id"
        case .run: return nil
        }
    }

    /// The group key of a finished run (nil: runs do not belong to such groups); a fixed expression.
    static func runKey(_ g: UsageGrouping) -> String? {
        switch g {
        case .day: return "to_char(to_timestamp(ended_at + \(Date.timeIntervalBetween1970AndReferenceDate)) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
        case .sandbox: return nil
        case .run: return "id"
        }
    }
}
