import Foundation
import OneShot
import Logging
import Metrics
import SandboxCore
import SandboxManager
import SandboxStore

/// The execution service of one node: claims runs from the store's queue, runs each in a fresh
/// one-shot sandbox of its isolation, keeps its lease alive by heartbeat, and records how each attempt
/// ended; takes back runs whose worker died; delivers webhooks.
///
/// Wake-ups come from ``RunStore/runChanges()`` (in-process for SQLite, LISTEN/NOTIFY for
/// PostgreSQL); timers only cover retry backoffs and lease expiry. ``run()`` runs until its task
/// is cancelled; runs still executing then are handed back to the queue (`worker_lost`).
public actor RunService {
    /// The node's settings (`sandboxer serve` flags).
    public struct Configuration: Sendable {
        /// Identifies this node across restarts (host name + data directory); workers are `node#pid.random`.
        public var node: String
        /// Runs executed at once on this node.
        public var concurrency: Int
        /// Runs of one tenant running at once across the fleet.
        public var tenantCap: Int
        /// How long a claim holds without a heartbeat.
        public var lease: Duration
        /// How often leases are renewed and expired leases taken back.
        public var heartbeat: Duration
        public var retry: RetryPolicy
        /// Output kept per attempt.
        public var logCapBytes: Int
        public var webhooks: WebhookSender.Configuration

        public init(node: String, concurrency: Int = 4, tenantCap: Int = 4,
                    lease: Duration = .seconds(15), heartbeat: Duration = .seconds(3), retry: RetryPolicy = RetryPolicy(),
                    logCapBytes: Int = 1 << 20, webhooks: WebhookSender.Configuration = .init()) {
            self.node = node
            self.concurrency = max(1, concurrency)
            self.tenantCap = max(1, tenantCap)
            self.lease = lease
            self.heartbeat = heartbeat
            self.retry = retry
            self.logCapBytes = logCapBytes
            self.webhooks = webhooks
        }
    }

    public nonisolated let configuration: Configuration
    public nonisolated let store: any RunStore
    /// This process's worker id (`node#pid.random`).
    public nonisolated let workerId: String
    let runner: OneShotRunner
    let logger: Logger
    let wake = WakeSignal()
    let webhooks: WebhookSender
    /// Runs executing here, with the signal that cancels each.
    var running: [String: WakeSignal] = [:]
    /// Runs whose cancel was asked (kill → `cancelled`), vs. cancelled because the service stops.
    var cancelAsked: Set<String> = []
    /// Runs whose end is being recorded: a lease found lost for them is not acted on.
    var finishing: Set<String> = []
    /// When this node last saw the store unreachable: for a lease after that, nobody's lease is
    /// taken back (every node's heartbeats failed alike; each gets a heartbeat to renew first).
    var lastOutage: ContinuousClock.Instant?

    /// The tenants' quotas, which attempts count against (nil: runs are limited by `tenantCap` only).
    let admission: (any RunAdmission)?
    /// Ready sandboxes an attempt may use instead of starting one (nil: always one-shot).
    let pool: (any RunPool)?

    public init(store: any RunStore, runner: OneShotRunner, configuration: Configuration, admission: (any RunAdmission)? = nil,
                pool: (any RunPool)? = nil, logger: Logger = Logger(label: "sandboxer.runs")) {
        self.store = store
        self.admission = admission
        self.pool = pool
        self.runner = runner
        self.configuration = configuration
        self.logger = logger
        self.workerId = "\(configuration.node)#\(getpid()).\(String(UInt32.random(in: 0...UInt32.max), radix: 36))"
        self.webhooks = WebhookSender(store: store, configuration: configuration.webhooks, logger: logger)
    }

    /// Runs executing on this node now.
    public var activeRuns: [String] { Array(running.keys) }

    /// Takes back what this node's earlier process held, then claims and runs until cancelled.
    public func run() async {
        let orphans = RunFiles.removeOrphans()
        if orphans > 0 { logger.notice("removed run file directories of workers that are gone", metadata: ["count": "\(orphans)"]) }
        do {
            let taken = try await store.expireLeases(policy: configuration.retry, heldByPrefix: configuration.node + "#")
            if !taken.isEmpty {
                logger.notice("runs of the previous process taken back", metadata: ["runs": "\(taken.map(\.id))"])
            }
        } catch {
            logger.error("could not take back the previous process's runs (their leases will expire)", metadata: ["error": "\(error)"])
        }
        let changes = store.runChanges()
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.listen(changes) }
            group.addTask { await self.heartbeats() }
            group.addTask { await self.webhooks.run() }
            await self.dispatch(into: &group)
            group.cancelAll()
        }
        logger.info("run service stopped", metadata: ["worker": "\(workerId)"])
    }

    /// Claims runs while there is room and starts each as a child task; sleeps until woken.
    func dispatch(into group: inout TaskGroup<Void>) async {
        while !Task.isCancelled {
            let free = configuration.concurrency - running.count
            var claimed: [RunRecord] = []
            if free > 0 {
                // No claims while the store is unreachable; the first moment it answers, claim.
                if !store.health.isUp {
                    await waitForStore()
                    continue
                }
                do {
                    claimed = try await store.claimRuns(
                        worker: workerId, limit: free, tenantCap: configuration.tenantCap, lease: configuration.lease)
                } catch {
                    if StoreHealth.isOutage(error) { continue }  // marked down: wait above
                    logger.error("claiming runs failed; retrying", metadata: ["error": "\(error)"])
                }
            }
            for run in claimed {
                let cancel = WakeSignal()
                running[run.id] = cancel
                RunMetrics.claimed(run)
                group.addTask { await self.execute(run, cancel: cancel) }
            }
            // Claimed a full batch: there may be more; otherwise sleep until something is ready,
            // a slot frees up, or the next retry is due.
            if !claimed.isEmpty && claimed.count == free { continue }
            await wake.wait(timeout: await idleTimeout())
        }
    }

    /// How long an idle dispatcher sleeps: until the next backoff ends, at most a heartbeat.
    func idleTimeout() async -> Duration {
        let cap = configuration.heartbeat
        guard running.count < configuration.concurrency, let due = try? await store.nextDueRun() else { return cap }
        let wait = due.timeIntervalSinceNow
        if wait <= 0 { return .milliseconds(1) }
        return min(cap, .milliseconds(Int64(wait * 1000) + 1))
    }

    func listen(_ changes: AsyncStream<RunChange>) async {
        for await change in changes {
            switch change.kind {
            case .ready: wake.signal()
            case .cancel: requestCancel(change.runId)
            case .state: break
            }
        }
    }

    func requestCancel(_ runId: String) {
        guard let signal = running[runId] else { return }
        cancelAsked.insert(runId)
        signal.signal()
    }

    /// Renews the leases of the runs executing here (a run whose lease was lost is stopped: another
    /// worker has it), cancels those with a cancel asked, and takes back other workers' expired leases.
    ///
    /// A heartbeat that cannot reach the store stops nothing: runs go on, and the leases are
    /// renewed the moment the store answers again.
    func heartbeats() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: configuration.heartbeat)
            if !store.health.isUp { await waitForStore() }
            if Task.isCancelled { return }
            // Runs being recorded are renewed too (a late heartbeat must not let their lease lapse
            // before the record lands); they are only never stopped as "lost".
            let ids = Array(running.keys)
            do {
                let renewal = try await store.renewLeases(worker: workerId, runIds: ids, lease: configuration.lease)
                for id in renewal.cancelRequested { requestCancel(id) }
                for id in ids where !renewal.held.contains(id) && running[id] != nil && !finishing.contains(id) {
                    logger.warning("lost the lease of a run; stopping it here", metadata: ["run": "\(id)"])
                    running[id]?.signal()
                }
                if let lastOutage, ContinuousClock.now - lastOutage < configuration.lease { continue }
                lastOutage = nil
                let expired = try await store.expireLeases(policy: configuration.retry, heldByPrefix: nil)
                for run in expired {
                    logger.warning("a worker stopped renewing its lease; run taken back", metadata: [
                        "run": "\(run.id)", "state": "\(run.state.rawValue)", "reason": "\(run.attempts.last?.reason ?? "")"])
                }
                if !expired.isEmpty { wake.signal() }
            } catch {
                if StoreHealth.isOutage(error) {
                    lastOutage = .now
                } else {
                    logger.error("heartbeat failed; leases may expire", metadata: ["error": "\(error)"])
                }
            }
        }
    }

    /// Waits until the store answers again (or the service stops), noting the outage.
    func waitForStore() async {
        lastOutage = .now
        await store.health.waitUntilUp()
        if store.health.isUp { lastOutage = .now }
    }

    func markFinishing(_ runId: String) { finishing.insert(runId) }

    func finished(_ runId: String) {
        running[runId] = nil
        finishing.remove(runId)
        cancelAsked.remove(runId)
        wake.signal()
    }

    func wasCancelAsked(_ runId: String) -> Bool { cancelAsked.contains(runId) }
}
