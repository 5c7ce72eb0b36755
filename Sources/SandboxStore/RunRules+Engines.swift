import Foundation
import SandboxCore

/// What the SQLite and PostgreSQL engines share beyond the state machine: the fairness pick, the
/// errors (with what to do), webhook bookkeeping, stats folding.
extension RunRules {
    /// The tenant whose run is claimed next: fewest running runs, then the oldest waiting run;
    /// tenants at `cap` running runs are skipped. nil: nothing claimable.
    public static func fairest(_ waiting: [(tenant: String, oldest: Double)], running: [String: Int], cap: Int) -> String? {
        waiting.filter { running[$0.tenant, default: 0] < cap }
            .min { a, b in
                let ra = running[a.tenant, default: 0], rb = running[b.tenant, default: 0]
                return ra != rb ? ra < rb : a.oldest < b.oldest
            }?.tenant
    }

    /// The change to announce after `run` was written.
    public static func change(_ run: RunRecord) -> RunChange {
        RunChange(kind: run.state == .queued ? .ready : .state, runId: run.id, tenantId: run.tenantId, state: run.state)
    }

    /// How an attempt whose worker stopped renewing its lease ends.
    public static func workerLost(_ run: RunRecord, restarted: Bool) -> AttemptEnd {
        let worker = run.lease?.worker ?? "?"
        return AttemptEnd(
            outcome: .workerLost,
            reason: restarted
                ? "worker \(worker) \(restartedMark) (its process ended without finishing the attempt)"
                : "worker \(worker) \(stoppedRenewingMark) (crashed, killed or cut off)")
    }

    static let restartedMark = "was restarted mid-run"
    static let stoppedRenewingMark = "stopped renewing its lease"

    /// After this many attempts cut short by their worker's process dying, a run is quarantined:
    /// `dead`, not retried, whatever attempts it has left (a run that crashes the server would
    /// otherwise crash it again on every restart).
    public static let quarantineAfter = 2

    /// Attempts of `run` whose worker process died mid-attempt (killed, crashed, or stopped
    /// renewing its lease) — not those a worker gave back itself on a graceful stop.
    public static func processDeaths(_ run: RunRecord) -> Int {
        run.attempts.filter { a in
            a.outcome == .workerLost && (a.reason.map { $0.contains(restartedMark) || $0.contains(stoppedRenewingMark) } ?? false)
        }.count
    }

    /// Applies a webhook delivery try to the run's webhook state.
    public static func record(_ run: inout RunRecord, _ delivery: WebhookDelivery, next: Date?) {
        guard var hook = run.webhook else { return }
        hook.deliveries = max(hook.deliveries, delivery.number)
        if delivery.succeeded {
            hook.state = .delivered
            hook.nextAt = nil
        } else if let next {
            hook.state = .pending
            hook.nextAt = next
        } else {
            hook.state = .failed
            hook.nextAt = nil
        }
        run.webhook = hook
    }

    /// Folds (minute number since the reference date, final state, count) rows into minutes.
    public static func minutes(_ rows: [(minute: Int, state: RunState, count: Int)]) -> [RunStats.Minute] {
        var byMinute: [Int: RunStats.Minute] = [:]
        for row in rows {
            var m = byMinute[row.minute] ?? RunStats.Minute(at: Date(timeIntervalSinceReferenceDate: Double(row.minute) * 60))
            switch row.state {
            case .succeeded: m.succeeded += row.count
            case .cancelled: m.cancelled += row.count
            case .failed, .timedOut, .dead: m.failed += row.count
            case .queued, .running: break
            }
            byMinute[row.minute] = m
        }
        return byMinute.keys.sorted().compactMap { byMinute[$0] }
    }

    // MARK: Errors

    public static func queueFull(queued: Int, max: Int) -> SandboxError {
        SandboxError(.quotaExceeded,
                     "this tenant already has \(queued) queued runs, the most its quota allows (max_queued_runs \(max)); wait for some to start, or cancel some",
                     retryAfterSeconds: 5)
    }

    public static func notFound(_ id: String) -> SandboxError {
        SandboxError(.notFound, "no run \(id); list yours with GET /v1/runs")
    }

    public static func alreadyEnded(_ run: RunRecord) -> SandboxError {
        SandboxError(.invalidState, "run \(run.id) already ended (\(run.state.rawValue)); POST /v1/runs/\(run.id)/retry runs it again")
    }

    public static func notEnded(_ run: RunRecord) -> SandboxError {
        SandboxError(.invalidState, "run \(run.id) is \(run.state.rawValue); only a finished run can be retried (cancel it first)")
    }
}
