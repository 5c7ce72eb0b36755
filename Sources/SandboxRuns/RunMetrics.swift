import Foundation
import Metrics
import SandboxCore
import SandboxManager
import SandboxStore

/// The queue's Prometheus series: claims, ends by state, and how long runs waited to start.
enum RunMetrics {
    static func claimed(_ run: RunRecord) {
        Counter(label: "sandboxer_runs_claimed_total").increment()
        let waited = Date().timeIntervalSince(max(run.createdAt, run.notBefore))
        Metrics.Timer(label: "sandboxer_run_queue_wait_seconds").recordNanoseconds(Int64(max(0, waited) * 1e9))
    }

    static func pooled() {
        Counter(label: "sandboxer_runs_pooled_total").increment()
    }

    static func handedBack(_ run: RunRecord) {
        Counter(label: "sandboxer_runs_handed_back_total").increment()
    }

    static func finished(_ run: RunRecord, attempt: AttemptOutcome) {
        Counter(label: "sandboxer_run_attempts_total", dimensions: [("outcome", attempt.rawValue)]).increment()
        if run.state.isFinal {
            Counter(label: "sandboxer_runs_finished_total", dimensions: [("state", run.state.rawValue)]).increment()
            TenantMetrics.countRun(tenantId: run.tenantId, state: run.state.rawValue, usage: run.result?.usage)
        }
    }
}
