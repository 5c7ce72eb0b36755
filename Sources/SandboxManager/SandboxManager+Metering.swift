import Foundation
import Metrics
import SandboxCore
import SandboxStore

extension SandboxManager {
    /// Starts metering after start-up: sandboxes adopted from an earlier process get a mark
    /// without a sample (that process stored their usage up to its last sample), then every live
    /// sandbox is sampled each ``UsageMeter/interval``; the samples go through the recorder.
    func startMetering() {
        let now = Date()
        for (id, l) in live where l.record.state == .running {
            meter.baseline(reading(id, l), at: now)
        }
        background.append(Task { [weak self, interval = meter.interval] in
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                await self?.sampleUsage()
            }
        })
    }

    /// Samples every running sandbox now (one batch through the recorder).
    func sampleUsage() {
        let now = Date()
        let samples = live.compactMap { id, l in
            l.record.state == .running ? meter.sample(reading(id, l), at: now) : nil
        }
        if !samples.isEmpty { recorder.enqueue(.usage(samples)) }
    }

    /// A sandbox's last sample, taken before its processes are killed (destroy, lost).
    func sampleEnd(_ id: String) {
        guard let l = live[id] else { return }
        if let s = meter.sample(reading(id, l), final: true) { recorder.enqueue(.usage([s])) }
    }

    /// What the meter reads of a live sandbox: its backend's cgroup reading, its egress bytes, its exec count.
    private func reading(_ id: String, _ l: Live) -> UsageMeter.Reading {
        var resources: ResourceReading?
        if case .up(let handle) = l.stage, let metered = backends[l.record.profile.isolation] as? any ResourceMetered {
            resources = metered.resourceReading(handle)
        }
        return UsageMeter.Reading(
            tenantId: l.record.tenantId, sandboxId: id, createdAt: l.record.createdAt, resources: resources,
            egress: configuration.egress?.traffic(sandboxId: id), execs: l.record.execCount)
    }

    /// The tenant's usage (``SandboxStore/usage(_:)``), with every live sandbox sampled and the
    /// recorder flushed first, so it includes what was used up to now. `until` nil: now, after the
    /// samples; `since` nil: `defaultWindow` before `until`. Returns the query it answered.
    public func usage(tenantId: String, since: Date?, until: Date?, groupBy: UsageGrouping,
                      defaultWindow: TimeInterval = 30 * 86_400) async throws -> (query: UsageQuery, groups: [UsageGroup]) {
        sampleUsage()
        await flushRecorder()
        let end = until ?? Date()
        let query = UsageQuery(tenantId: tenantId, since: since ?? end.addingTimeInterval(-defaultWindow), until: end, groupBy: groupBy)
        return (query, try await store.usage(query))
    }
}

extension SandboxManager {
    /// `sandboxer_agent_call_seconds`: one file or process operation on a live sandbox through its
    /// backend (the agent's round trip and its work; an exec is `sandboxer_exec_duration_seconds`).
    static var agentCalls: Metrics.Timer { Metrics.Timer(label: "sandboxer_agent_call_seconds") }
}
