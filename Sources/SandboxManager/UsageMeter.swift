import Foundation
import Metrics
import SandboxCore
import SandboxStore
import Synchronization

/// Turns successive readings of live sandboxes (cgroup CPU and memory, egress bytes, exec
/// counts) into ``UsageSample``s — deltas since the sandbox's previous sample — and counts them
/// per tenant for Prometheus. The manager samples every ``interval``, when a sandbox ends, and
/// before `GET /v1/usage` reads the store.
final class UsageMeter: Sendable {
    /// Where a sandbox's counters stood at its last sample.
    struct Mark: Sendable {
        var at: Date
        var cpuNanoseconds: Int64
        var egress: EgressTraffic
        var execs: Int
    }

    /// What the meter reads of one sandbox now.
    struct Reading: Sendable {
        var tenantId: String
        var sandboxId: String
        var createdAt: Date
        var resources: ResourceReading?
        var egress: EgressTraffic?
        var execs: Int
    }

    /// Time between samples of every live sandbox.
    let interval: Duration
    private let marks = Mutex<[String: Mark]>([:])

    init(interval: Duration = UsageMeter.defaultInterval) {
        self.interval = interval
    }

    /// 15 s: a sandbox's memory is a rectangle this wide at most, and a restart loses at most this
    /// much of a live sandbox's usage.
    static let defaultInterval: Duration = .seconds(15)

    static let gibibyte = Double(1 << 30)

    /// Marks where `r` stands without a sample: a sandbox adopted from an earlier process, whose
    /// usage up to its last sample that process stored already.
    func baseline(_ r: Reading, at now: Date = Date()) {
        let mark = Mark(at: now, cpuNanoseconds: r.resources?.cpuNanoseconds ?? 0, egress: r.egress ?? EgressTraffic(), execs: r.execs)
        marks.withLock { $0[r.sandboxId] = mark }
    }

    /// The usage of `r` since its last mark (a sandbox not seen before: since it was created, from
    /// zero), and the new mark; `final` forgets the sandbox. Nil when nothing was used.
    func sample(_ r: Reading, at now: Date = Date(), final: Bool = false) -> UsageSample? {
        let previous = marks.withLock { m -> Mark? in
            let previous = m[r.sandboxId]
            if final {
                m.removeValue(forKey: r.sandboxId)
            } else {
                // Counters that went missing (the cgroup or the proxy session gone) keep their last value.
                m[r.sandboxId] = Mark(
                    at: now, cpuNanoseconds: r.resources?.cpuNanoseconds ?? previous?.cpuNanoseconds ?? 0,
                    egress: r.egress ?? previous?.egress ?? EgressTraffic(), execs: r.execs)
            }
            return previous
        }
        let from = previous ?? Mark(at: r.createdAt, cpuNanoseconds: 0, egress: EgressTraffic(), execs: 0)
        let seconds = max(0, now.timeIntervalSince(from.at))
        var s = UsageSample(tenantId: r.tenantId, sandboxId: r.sandboxId, at: now, sandboxSeconds: seconds)
        if let res = r.resources {
            s.cpuSeconds = Double(max(0, res.cpuNanoseconds - from.cpuNanoseconds)) / 1e9
            s.memoryGiBSeconds = Double(max(0, res.memoryBytes)) / Self.gibibyte * seconds
        }
        if let e = r.egress {
            s.egressBytesIn = max(0, e.bytesIn - from.egress.bytesIn)
            s.egressBytesOut = max(0, e.bytesOut - from.egress.bytesOut)
        }
        s.execs = Int64(max(0, r.execs - from.execs))
        guard s.sandboxSeconds > 0 || s.cpuSeconds > 0 || s.execs > 0 || s.egressBytesIn > 0 || s.egressBytesOut > 0 else { return nil }
        TenantMetrics.count(s)
        return s
    }

    /// Sandboxes with a mark (live ones this process meters).
    var metered: Set<String> { marks.withLock { Set($0.keys) } }
}

/// The per-tenant Prometheus series of usage, with a bounded label set: the first
/// ``maxTenants`` tenant ids this process meters are labels of their own, every later tenant
/// is `other` (so a server with thousands of tenants exports at most that many series per
/// metric; the per-tenant truth is `GET /v1/usage`, from the store).
public enum TenantMetrics {
    /// Distinct `tenant` label values besides `other`.
    public static let maxTenants = 50
    private static let labels = Mutex<Set<String>>([])

    /// The `tenant` label of `tenantId`.
    public static func label(_ tenantId: String) -> String {
        labels.withLock { set in
            if set.contains(tenantId) { return tenantId }
            guard set.count < maxTenants else { return "other" }
            set.insert(tenantId)
            return tenantId
        }
    }

    /// Adds a sample to its tenant's counters.
    static func count(_ s: UsageSample) {
        let tenant = [("tenant", label(s.tenantId))]
        if s.sandboxSeconds > 0 { FloatingPointCounter(label: "sandboxer_tenant_sandbox_seconds_total", dimensions: tenant).increment(by: s.sandboxSeconds) }
        if s.cpuSeconds > 0 { FloatingPointCounter(label: "sandboxer_tenant_cpu_seconds_total", dimensions: tenant).increment(by: s.cpuSeconds) }
        if s.memoryGiBSeconds > 0 {
            FloatingPointCounter(label: "sandboxer_tenant_memory_gib_seconds_total", dimensions: tenant).increment(by: s.memoryGiBSeconds)
        }
        if s.egressBytesIn > 0 {
            Counter(label: "sandboxer_tenant_egress_bytes_total", dimensions: tenant + [("direction", "in")]).increment(by: s.egressBytesIn)
        }
        if s.egressBytesOut > 0 {
            Counter(label: "sandboxer_tenant_egress_bytes_total", dimensions: tenant + [("direction", "out")]).increment(by: s.egressBytesOut)
        }
        if s.execs > 0 { Counter(label: "sandboxer_tenant_execs_total", dimensions: tenant).increment(by: s.execs) }
    }

    /// Counts a finished run of `tenantId` by its final state, with its CPU time.
    public static func countRun(tenantId: String, state: String, usage: Usage?) {
        let tenant = [("tenant", label(tenantId))]
        Counter(label: "sandboxer_tenant_runs_total", dimensions: tenant + [("outcome", state)]).increment()
        if let cpu = usage?.cpuMs, cpu > 0 {
            FloatingPointCounter(label: "sandboxer_tenant_cpu_seconds_total", dimensions: tenant).increment(by: cpu / 1000)
        }
    }
}
