import Foundation
import SandboxCore

/// The durable run queue, behind one protocol with two engines: SQLite (one node, the default)
/// and PostgreSQL (a fleet of `serve` processes on one database).
///
/// Rules every engine keeps (the contract tests in `Tests/SandboxStoreTests` run on both):
/// - A run accepted by ``submitRun(_:maxQueued:)`` is never lost: it is in the store before the
///   call returns, and only reaches a final state through ``finishAttempt(runId:worker:_:policy:)``,
///   ``cancelRun(tenantId:id:)`` or ``expireLeases(policy:heldByPrefix:)``.
/// - A claim is exclusive: a run is `running` under exactly one worker's lease. A worker that lost
///   its lease (expired and taken back) cannot finish the attempt any more (`finishAttempt` → nil).
/// - Claims are fair between tenants: each claim goes to the tenant with the fewest running runs
///   among those with a due queued run (ties: the oldest waiting run first); within a tenant,
///   higher `priority` first, then oldest. A tenant at `tenantCap` running runs is skipped.
/// - Infrastructure outcomes (``AttemptOutcome/isInfrastructure``) requeue the run with a backoff
///   (``RetryPolicy``) while attempts remain, else the run is `dead`; result outcomes are final.
///   ``RunRules`` holds that decision so both engines and the worker share it.
/// - Every state change is announced on ``runChanges()``.
public protocol RunStore: Sendable {
    /// Whether the store answers (shared with ``SandboxStore/health``: one guard per store).
    var health: StoreHealth { get }

    /// Stores a new `queued` run, or returns the tenant's run with the same idempotency key
    /// (`created` false; nothing stored). Refuses with `quota_exceeded` (and `retryAfterSeconds`)
    /// when the tenant already has `maxQueued` queued runs.
    func submitRun(_ run: RunRecord, maxQueued: Int) async throws -> (run: RunRecord, created: Bool)
    func run(id: String) async throws -> RunRecord?
    /// A tenant's runs, newest first, filtered by ``RunQuery``.
    func runs(_ query: RunQuery) async throws -> Page<RunRecord>

    /// Claims up to `limit` due queued runs for `worker` (fairest first, see above): each becomes
    /// `running` with a new attempt and a lease until now + `lease`.
    func claimRuns(worker: String, limit: Int, tenantCap: Int, lease: Duration) async throws -> [RunRecord]
    /// Extends the leases `worker` still holds among `runIds`; reports which it holds and which of
    /// those have a cancel asked.
    func renewLeases(worker: String, runIds: [String], lease: Duration) async throws -> LeaseRenewal
    /// Ends the current attempt of a run `worker` holds: final state, or back to `queued` with a
    /// backoff / `dead` for infrastructure outcomes (``RunRules``). A cancel asked meanwhile makes an
    /// infrastructure outcome final `cancelled`. Returns nil (and changes nothing) when the worker
    /// no longer holds the run.
    func finishAttempt(runId: String, worker: String, _ end: AttemptEnd, policy: RetryPolicy) async throws -> RunRecord?
    /// Records the sandbox an attempt runs in, while it runs (for the monitor and the logs).
    func setAttemptSandbox(runId: String, worker: String, sandboxId: String) async throws
    /// Hands a run `worker` claimed but did not start back to the queue (``RunRules/handBack``):
    /// its attempt is removed, not counted, and it is due again at `until`. Returns nil (and
    /// changes nothing) when the worker no longer holds the run.
    func handBack(runId: String, worker: String, until: Date, reason: String) async throws -> RunRecord?

    /// A queued run is `cancelled` at once; a running one gets `cancelRequested` (its worker kills
    /// it); a final one is refused with `invalid_state`. Another tenant's run is `not_found`.
    func cancelRun(tenantId: String, id: String) async throws -> RunRecord
    /// A final run goes back to `queued` for one more attempt (its earlier attempts kept, its
    /// result cleared). A queued or running one is refused with `invalid_state`; a tenant with
    /// `maxQueued` queued runs with `quota_exceeded`, as a submit.
    func retryRun(tenantId: String, id: String, maxQueued: Int) async throws -> RunRecord
    /// Runs whose lease ran out — or whose worker id starts with `heldByPrefix` (this node's
    /// earlier incarnation, after a restart) — get their attempt ended `worker_lost` and are
    /// requeued with a backoff or `dead` (``RunRules``). Returns the runs it changed.
    func expireLeases(policy: RetryPolicy, heldByPrefix: String?) async throws -> [RunRecord]
    /// When the earliest queued run becomes due (nil: none queued), so an idle worker can sleep
    /// until then or until ``runChanges()`` says something is ready.
    func nextDueRun() async throws -> Date?

    /// Appends output of an attempt, numbering the chunks after its last one (their `seq` is
    /// ignored); keeps at most `cap` bytes per run attempt (the head).
    func appendRunLog(runId: String, attempt: Int, chunks: [RunLogChunk], cap: Int) async throws
    /// An attempt's output after `afterSeq`, in order.
    func runLog(runId: String, attempt: Int, afterSeq: Int) async throws -> [RunLogChunk]

    /// Finished runs with a webhook delivery due, taken for `lease` (another node will not deliver
    /// them meanwhile): at most `limit`, and at most `perTenant` of one tenant counting the `busy`
    /// deliveries of that tenant the caller already has in flight (a tenant at its cap is skipped,
    /// so its backlog never holds up another tenant's deliveries).
    func claimWebhooks(limit: Int, lease: Duration, perTenant: Int, busy: [String: Int]) async throws -> [RunRecord]
    /// Records a delivery try. `next` nil: the webhook is done (`delivered` if it succeeded, else
    /// `failed`); otherwise the next try is due then.
    func recordWebhookDelivery(_ delivery: WebhookDelivery, next: Date?) async throws
    func webhookDeliveries(runId: String) async throws -> [WebhookDelivery]

    /// Queued and running counts and the per-minute ends of a tenant's runs since `since`.
    func runStats(tenantId: String, since: Date) async throws -> RunStats

    /// Changes to runs (see ``RunChange``); each call is a new subscription that ends when the
    /// store is closed or the consumer stops iterating.
    func runChanges() -> AsyncStream<RunChange>
}

extension RunStore {
    /// Due webhooks with no per-tenant cap.
    public func claimWebhooks(limit: Int, lease: Duration) async throws -> [RunRecord] {
        try await claimWebhooks(limit: limit, lease: lease, perTenant: Int.max, busy: [:])
    }
}

/// Which due webhook deliveries a claim takes: in the order given, at most `limit`, at most
/// `perTenant` per tenant counting what is `busy` already. Shared by the store engines.
public enum WebhookClaim {
    /// Tenants already at their cap (left out of the query).
    public static func full(perTenant: Int, busy: [String: Int]) -> [String] {
        busy.filter { $0.value >= perTenant }.map(\.key).sorted()
    }

    /// How many candidate rows to read for `limit` claims (some may be of a tenant that fills up).
    public static func candidates(limit: Int) -> Int { min(max(limit, 1) * 4, 400) }

    /// The candidates taken, in order.
    public static func pick(_ runs: [RunRecord], limit: Int, perTenant: Int, busy: [String: Int]) -> [RunRecord] {
        var taken: [RunRecord] = []
        var count = busy
        for run in runs where taken.count < max(limit, 1) {
            guard count[run.tenantId, default: 0] < perTenant else { continue }
            count[run.tenantId, default: 0] += 1
            taken.append(run)
        }
        return taken
    }
}

/// Backoff between attempts after an infrastructure failure: `base × 2^(attempt-1)`, at most `max`,
/// with ±`jitter` (a fraction) so a fleet's retries spread out.
public struct RetryPolicy: Sendable, Equatable {
    public var base: Duration
    public var max: Duration
    public var jitter: Double
    public init(base: Duration = .seconds(1), max: Duration = .seconds(60), jitter: Double = 0.5) {
        self.base = base
        self.max = max
        self.jitter = jitter
    }

    /// Delay before attempt `attempt + 1` (attempt ≥ 1), in seconds.
    public func delay(after attempt: Int, random: Double = Double.random(in: -1...1)) -> Double {
        let raw = min(self.max.seconds, base.seconds * pow(2, Double(Swift.max(0, attempt - 1))))
        return Swift.max(0, raw * (1 + jitter * random))
    }
}

/// The decisions both engines and the worker share: where a run goes after an attempt.
public enum RunRules {
    /// Applies `end` to `run` (whose current attempt is the last one) at `now`: closes the attempt,
    /// then moves the run to its final state, or back to `queued` with a backoff, or `dead`.
    public static func finish(_ run: inout RunRecord, _ end: AttemptEnd, policy: RetryPolicy, now: Date = Date()) throws(ImpossibleTransition) {
        if var last = run.attempts.last, last.outcome == nil {
            last.endedAt = now
            last.outcome = end.outcome
            last.reason = end.reason
            if let id = end.sandboxId { last.sandboxId = id }
            if let environment = end.environment { last.environment = environment }
            run.attempts[run.attempts.count - 1] = last
        }
        run.lease = nil
        run.updatedAt = now
        if let result = end.result { run.result = result }
        if let final = end.outcome.finalState {
            try run.move(to: final)
            run.endedAt = now
            run.reason = end.reason
        } else if run.cancelRequested {
            try run.move(to: .cancelled)
            run.endedAt = now
            run.reason = "cancelled while its attempt failed: \(end.reason ?? end.outcome.rawValue)"
        } else if end.outcome == .workerLost, processDeaths(run) >= quarantineAfter {
            try run.move(to: .dead)
            run.endedAt = now
            run.reason = "quarantined: \(processDeaths(run)) of its attempts ended with their worker process dying mid-run (this run may be what kills it), so it is not retried; inspect it, then POST /v1/runs/\(run.id)/retry to run it once more"
        } else if run.attempts.count >= run.maxAttempts {
            try run.move(to: .dead)
            run.endedAt = now
            let reasons = run.attempts.map { "#\($0.number) \($0.outcome?.rawValue ?? "?"): \($0.reason ?? "")" }
            run.reason = "all \(run.maxAttempts) attempts failed: " + reasons.joined(separator: "; ")
        } else {
            try run.move(to: .queued)
            run.notBefore = now.addingTimeInterval(policy.delay(after: run.attempts.count))
            run.reason = "attempt \(run.attempts.count) \(end.outcome.rawValue): \(end.reason ?? ""); retrying"
        }
        if run.state.isFinal, var hook = run.webhook, hook.state == .waiting {
            hook.state = .pending
            hook.nextAt = now
            run.webhook = hook
        }
    }

    /// Starts a new attempt of `run` for `worker` with a lease until `now + lease`.
    public static func claim(_ run: inout RunRecord, worker: String, lease: Duration, now: Date = Date()) throws(ImpossibleTransition) {
        try run.move(to: .running)
        run.lease = RunLease(worker: worker, expiresAt: now.addingTimeInterval(lease.seconds))
        // The attempt's sandbox is named now, so a crash mid-run still names it (no write of its own).
        run.attempts.append(RunAttempt(number: run.attempts.count + 1, worker: worker, startedAt: now, sandboxId: SandboxSpec.newID()))
        if run.startedAt == nil { run.startedAt = now }
        run.updatedAt = now
    }

    /// A claimed run whose attempt did not start (the tenant is at its quota): back to `queued`,
    /// due at `until`, the attempt the claim added removed (it does not count against `max_attempts`).
    public static func handBack(_ run: inout RunRecord, until: Date, reason: String, now: Date = Date()) throws(ImpossibleTransition) {
        try run.move(to: .queued)
        if let last = run.attempts.last, last.outcome == nil { run.attempts.removeLast() }
        if run.attempts.isEmpty { run.startedAt = nil }
        run.lease = nil
        run.notBefore = until
        run.reason = reason
        run.updatedAt = now
    }

    /// `retry` of a final run: one more attempt allowed, result and end cleared.
    public static func retry(_ run: inout RunRecord, now: Date = Date()) throws(ImpossibleTransition) {
        try run.move(to: .queued)
        run.maxAttempts = Swift.max(run.maxAttempts, run.attempts.count + 1)
        run.result = nil
        run.endedAt = nil
        run.reason = "retried"
        run.cancelRequested = false
        run.notBefore = now
        run.updatedAt = now
        if var hook = run.webhook {
            hook.state = .waiting
            hook.nextAt = nil
            run.webhook = hook
        }
    }

    /// `cancel` of a queued run.
    public static func cancelQueued(_ run: inout RunRecord, now: Date = Date()) throws(ImpossibleTransition) {
        guard run.state == .queued else { throw ImpossibleTransition(what: "run", id: run.id, from: run.state.rawValue, to: "cancelled (as a queued run)") }
        try run.move(to: .cancelled)
        run.endedAt = now
        run.updatedAt = now
        run.reason = "cancelled before it started"
        if var hook = run.webhook, hook.state == .waiting {
            hook.state = .pending
            hook.nextAt = now
            run.webhook = hook
        }
    }

    /// The attempt outcome of a finished backend result.
    public static func outcome(of result: ExecResult) -> AttemptOutcome {
        switch result.outcome {
        case .ok: return .succeeded
        case .timeout: return .timedOut
        case .cancelled: return .cancelled
        case .setupFailed: return .setupFailed
        case .outputTruncated: return result.exitCode == 0 ? .succeeded : .failed
        case .exitNonzero, .oom, .pidsLimit, .workspaceLimit, .diskLimit, .fileSizeLimit, .killed: return .failed
        }
    }
}

/// What a server runs on: the sandbox store, the run queue, the agent registry and the bounties in one engine.
public typealias ServerStore = SandboxStore & RunStore & AgentStore & BountyStore
