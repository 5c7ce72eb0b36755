import Foundation
import GRDB
import SandboxCore

extension SQLiteStore {
    public func appendUsage(_ samples: [UsageSample]) async throws {
        guard !samples.isEmpty else { return }
        try await write("storing \(samples.count) usage samples") { db in
            for s in samples {
                try db.execute(
                    sql: """
                        INSERT OR IGNORE INTO usage_samples (id, tenant_id, sandbox_id, at, sandbox_seconds, cpu_seconds,
                            memory_gib_seconds, egress_bytes_in, egress_bytes_out, execs)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [s.id, s.tenantId, s.sandboxId, s.at.column, s.sandboxSeconds, s.cpuSeconds, s.memoryGiBSeconds,
                                s.egressBytesIn, s.egressBytesOut, s.execs])
            }
        }
    }

    public func usage(_ q: UsageQuery) async throws -> [UsageGroup] {
        let args: StatementArguments = [q.tenantId, q.since.column, q.until.column]
        let limit = min(max(q.limit, 1), 100_000)
        return try await read("summing the usage of tenant \(q.tenantId)") { db in
            var samples: [UsageGroup] = []
            if let key = Self.sampleKey(q.groupBy) {
                samples = try Row.fetchAll(db, sql: """
                    SELECT \(key) AS k, sum(sandbox_seconds) AS ss, sum(cpu_seconds) AS cs, sum(memory_gib_seconds) AS ms,
                        sum(egress_bytes_in) AS bi, sum(egress_bytes_out) AS bo, sum(execs) AS ex
                    FROM usage_samples WHERE tenant_id = ? AND at >= ? AND at < ? GROUP BY k ORDER BY k LIMIT \(limit)
                    """, arguments: args
                ).map { row in
                    var t = UsageTotals()
                    t.sandboxSeconds = row["ss"] ?? 0
                    t.cpuSeconds = row["cs"] ?? 0
                    t.memoryGiBSeconds = row["ms"] ?? 0
                    t.egressBytesIn = row["bi"] ?? 0
                    t.egressBytesOut = row["bo"] ?? 0
                    t.execs = row["ex"] ?? 0
                    return UsageGroup(key: row["k"] ?? "", totals: t)
                }
            }
            var runs: [UsageGroup] = []
            if let key = Self.runKey(q.groupBy) {
                let usage = "json_extract(doc, '$.result.usage.%@')"
                let (wall, cpu, peak) = ("coalesce(\(usage.replacingOccurrences(of: "%@", with: "wall_ms")), 0)",
                                         "coalesce(\(usage.replacingOccurrences(of: "%@", with: "cpu_ms")), 0)",
                                         "coalesce(\(usage.replacingOccurrences(of: "%@", with: "peak_memory_bytes")), 0)")
                runs = try Row.fetchAll(db, sql: """
                    SELECT \(key) AS k, state, count(*) AS n, sum(\(wall)) / 1000.0 AS ss, sum(\(cpu)) / 1000.0 AS cs,
                        sum(\(peak) / 1073741824.0 * \(wall) / 1000.0) AS ms
                    FROM runs WHERE tenant_id = ? AND ended_at IS NOT NULL AND ended_at >= ? AND ended_at < ?
                    GROUP BY k, state ORDER BY k LIMIT \(limit)
                    """, arguments: args
                ).map { row in
                    var t = UsageTotals()
                    t.sandboxSeconds = row["ss"] ?? 0
                    t.cpuSeconds = row["cs"] ?? 0
                    t.memoryGiBSeconds = row["ms"] ?? 0
                    t.runs = [row["state"] ?? "unknown": row["n"] ?? 0]
                    return UsageGroup(key: row["k"] ?? "", totals: t)
                }
            }
            return UsageMerge.merge(samples, runs, limit: limit)
        }
    }

    /// The group key of a sample (nil: samples do not belong to such groups).
    static func sampleKey(_ g: UsageGrouping) -> String? {
        switch g {
        case .day: return "strftime('%Y-%m-%d', at + \(Date.timeIntervalBetween1970AndReferenceDate), 'unixepoch')"
        case .sandbox: return "sandbox_id"
        case .run: return nil
        }
    }

    /// The group key of a finished run (nil: runs do not belong to such groups).
    static func runKey(_ g: UsageGrouping) -> String? {
        switch g {
        case .day: return "strftime('%Y-%m-%d', ended_at + \(Date.timeIntervalBetween1970AndReferenceDate), 'unixepoch')"
        case .sandbox: return nil
        case .run: return "id"
        }
    }
}
