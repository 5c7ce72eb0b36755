import Foundation
import SandboxCore

/// What a live sandbox used between two samples of the server's meter (or its last sample and
/// its end): the unit a marketplace bills and an operator caps. Samples are deltas, never
/// totals, so they add up across samples, restarts and the nodes of a fleet.
public struct UsageSample: Sendable, Equatable, Codable {
    /// Unique per sample: a sample stored twice (a replay after an ambiguous failure) counts once.
    public var id: String
    public var tenantId: String
    public var sandboxId: String
    /// The end of the interval the sample covers (what `since`/`until` and days select by).
    public var at: Date
    /// Wall-clock seconds the sandbox was live in the interval.
    public var sandboxSeconds: Double
    /// CPU time of every process of the sandbox (its cgroup's counter).
    public var cpuSeconds: Double
    /// Memory in use (the cgroup's current usage at the sample, GiB) × the interval's seconds.
    public var memoryGiBSeconds: Double
    /// Bytes the egress proxy received from upstreams for the sandbox.
    public var egressBytesIn: Int64
    /// Bytes the egress proxy sent upstream for the sandbox.
    public var egressBytesOut: Int64
    /// Execs (and processes) started.
    public var execs: Int64

    public init(id: String = UUID().uuidString, tenantId: String, sandboxId: String, at: Date = Date(), sandboxSeconds: Double = 0,
                cpuSeconds: Double = 0, memoryGiBSeconds: Double = 0, egressBytesIn: Int64 = 0, egressBytesOut: Int64 = 0, execs: Int64 = 0) {
        self.id = id
        self.tenantId = tenantId
        self.sandboxId = sandboxId
        self.at = at
        self.sandboxSeconds = sandboxSeconds
        self.cpuSeconds = cpuSeconds
        self.memoryGiBSeconds = memoryGiBSeconds
        self.egressBytesIn = egressBytesIn
        self.egressBytesOut = egressBytesOut
        self.execs = execs
    }
}

/// How `GET /v1/usage` groups: by UTC day, by sandbox (the API's sandboxes), by run (queued runs).
public enum UsageGrouping: String, Sendable, CaseIterable {
    case day, sandbox, run
}

/// Usage summed over a group (or the whole window).
public struct UsageTotals: Sendable, Equatable, Codable {
    public var sandboxSeconds: Double = 0
    public var cpuSeconds: Double = 0
    public var memoryGiBSeconds: Double = 0
    public var egressBytesIn: Int64 = 0
    public var egressBytesOut: Int64 = 0
    public var execs: Int64 = 0
    /// Finished runs by their final state (`succeeded`, `failed`, `timed_out`, `cancelled`, `dead`).
    public var runs: [String: Int64] = [:]

    public init() {}

    enum CodingKeys: String, CodingKey {
        case sandboxSeconds = "sandbox_seconds", cpuSeconds = "cpu_seconds", memoryGiBSeconds = "memory_gib_seconds"
        case egressBytesIn = "egress_bytes_in", egressBytesOut = "egress_bytes_out", execs, runs
    }

    /// Adds `other` into these totals.
    public mutating func add(_ other: UsageTotals) {
        sandboxSeconds += other.sandboxSeconds
        cpuSeconds += other.cpuSeconds
        memoryGiBSeconds += other.memoryGiBSeconds
        egressBytesIn += other.egressBytesIn
        egressBytesOut += other.egressBytesOut
        execs += other.execs
        for (k, v) in other.runs { runs[k, default: 0] += v }
    }
}

/// One group of a usage report: its key (`2026-12-06`, a sandbox id, a run id) and its totals.
public struct UsageGroup: Sendable, Equatable {
    public var key: String
    public var totals: UsageTotals
    public init(key: String, totals: UsageTotals) {
        self.key = key
        self.totals = totals
    }
}

/// What to sum: one tenant's usage with `at` (a run: its end) in `since ..< until`.
public struct UsageQuery: Sendable, Equatable {
    public var tenantId: String
    public var since: Date
    public var until: Date
    public var groupBy: UsageGrouping
    /// Most groups returned (the first by key).
    public var limit: Int
    public init(tenantId: String, since: Date, until: Date, groupBy: UsageGrouping, limit: Int = 10_000) {
        self.tenantId = tenantId
        self.since = since
        self.until = until
        self.groupBy = groupBy
        self.limit = limit
    }
}

/// Merges the groups of live sandboxes' samples and of runs (same key: one group), sorted by key.
public enum UsageMerge {
    public static func merge(_ parts: [UsageGroup]..., limit: Int) -> [UsageGroup] {
        var byKey: [String: UsageTotals] = [:]
        for part in parts { for g in part { byKey[g.key, default: UsageTotals()].add(g.totals) } }
        return byKey.sorted { $0.key < $1.key }.prefix(limit).map { UsageGroup(key: $0.key, totals: $0.value) }
    }
}
