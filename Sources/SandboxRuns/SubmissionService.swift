import Foundation
import Logging
import SandboxCore
import SandboxStore

/// Advances bounty submissions on one node: queues each case's agent run, then its verifier run
/// once the agent run is final, scores the case, and scores the submission when every case is.
///
/// Every step is read → decide → compare-and-set (``BountyStore/updateSubmission(_:expected:)``),
/// and every run it queues has an idempotency key per submission, case and role: any number of
/// nodes (or a restart half-way) advance a submission without doubling a run or losing a step.
/// Woken by ``RunStore/runChanges()`` for runs labelled with a submission; a sweep of the
/// unfinished submissions at start and every ``sweepInterval`` catches what a change missed.
///
/// A tenant's `max_queued` applies to these runs as to any: a submission queues what fits and
/// the rest at a later sweep or change (it stays `queued`/`running` meanwhile).
public actor SubmissionService {
    /// What the service reads and writes: runs, bounties and submissions, agent versions.
    public typealias Store = any RunStore & BountyStore & AgentStore

    public nonisolated let store: Store
    /// The tenant's `max_queued` (its quota).
    let maxQueued: @Sendable (String) async throws -> Int
    public nonisolated let sweepInterval: Duration
    let logger: Logger
    /// Submissions being advanced here now.
    private var busy: Set<String> = []
    /// What to look at next for a submission: every run of it (a sweep), or only runs whose change
    /// arrived (the others move on their own changes, and every sweep looks at all).
    private var pending: [String: Look] = [:]

    enum Look {
        case all
        case runs([String: RunRecord])

        func adding(_ other: Look) -> Look {
            switch (self, other) {
            case (.runs(let a), .runs(let b)): .runs(a.merging(b) { $1 })
            default: .all
            }
        }
    }

    public init(store: Store, sweepInterval: Duration = .seconds(3), logger: Logger = Logger(label: "sandboxer.bounties"),
                maxQueued: @escaping @Sendable (String) async throws -> Int) {
        self.store = store
        self.maxQueued = maxQueued
        self.sweepInterval = sweepInterval
        self.logger = logger
    }

    /// Runs until its task is cancelled: listens to run changes and sweeps.
    public func run() async {
        let changes = store.runChanges()
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.listen(changes) }
            group.addTask { await self.sweepForever() }
            await group.next()
            group.cancelAll()
        }
        logger.info("submission service stopped")
    }

    private func listen(_ changes: AsyncStream<RunChange>) async {
        for await change in changes {
            if Task.isCancelled { return }
            guard change.kind == .state, change.state == .running || change.state.isFinal else { continue }
            guard let run = try? await store.run(id: change.runId), let submission = run.labels["submission"] else { continue }
            await advance(tenantId: run.tenantId, id: submission, changed: run)
        }
    }

    private func sweepForever() async {
        while !Task.isCancelled {
            // While the store is unreachable there is nothing to read (the first sweep after it is back catches up).
            if store.health.isUp { await sweep() }
            try? await Task.sleep(for: sweepInterval)
        }
    }

    /// Advances every unfinished submission once.
    public func sweep() async {
        do {
            for s in try await store.unfinishedSubmissions(limit: 1000) {
                if Task.isCancelled { return }
                await advance(tenantId: s.tenantId, id: s.id)
            }
        } catch {
            logger.warning("could not list unfinished submissions; the next sweep tries again", metadata: ["error": "\(error)"])
        }
    }

    /// Takes one submission as far as its runs allow now. Safe to call any time, from anywhere.
    /// `changed`: the run whose change prompted this (only it is looked at, besides queueing what
    /// is due); nil: every run of the submission (one query).
    public func advance(tenantId: String, id: String, changed: RunRecord? = nil) async {
        let look: Look = changed.map { .runs([$0.id: $0]) } ?? .all
        pending[id] = pending[id].map { $0.adding(look) } ?? look
        guard !busy.contains(id) else { return }
        busy.insert(id)
        defer { busy.remove(id) }
        while let next = pending.removeValue(forKey: id) {
            do { try await step(tenantId: tenantId, id: id, look: next) } catch {
                logger.warning("could not advance a submission; a later change or sweep tries again",
                               metadata: ["submission": "\(id)", "error": "\(error)"])
            }
        }
    }

    /// Read, decide, compare-and-set; read again when another writer came first.
    private func step(tenantId: String, id: String, look: Look) async throws {
        for _ in 0..<5 {
            guard let before = try await store.submission(tenantId: tenantId, id: id), !before.state.isFinal else { return }
            var after = before
            let known: [String: RunRecord]
            switch look {
            case .all: known = try await runs(of: before)
            case .runs(let runs): known = runs
            }
            try await decide(&after, known: known, complete: { if case .all = look { true } else { false } }())
            if after == before { return }
            after.updatedAt = max(Date(), before.updatedAt.addingTimeInterval(0.001))
            if try await store.updateSubmission(after, expected: before.updatedAt) {
                if after.state.isFinal {
                    logger.info("submission finished", metadata: [
                        "submission": "\(id)", "state": "\(after.state.rawValue)", "score": "\(after.score.map { "\($0)" } ?? "-")"])
                }
                return
            }
        }
    }

    /// Every run of a submission by id, in a few queries (its label, created since it was, a page
    /// of 1000 at a time) rather than one read per run.
    private func runs(of s: SubmissionRecord) async throws -> [String: RunRecord] {
        var found: [String: RunRecord] = [:]
        var query = RunQuery(tenantId: s.tenantId, since: s.createdAt.addingTimeInterval(-300), labels: ["submission": s.id], limit: 1000)
        while true {
            let page = try await store.runs(query)
            for run in page.items { found[run.id] = run }
            guard let next = page.nextCursor, !page.items.isEmpty else { return found }
            query.cursor = next
        }
    }

    /// Cancels a submission: its runs still queued or running are cancelled, and it ends `failed`
    /// ("cancelled on request"). nil when the tenant has no such submission; a finished one is
    /// returned as it is.
    public func cancel(tenantId: String, id: String) async throws -> SubmissionRecord? {
        for _ in 0..<5 {
            guard let before = try await store.submission(tenantId: tenantId, id: id) else { return nil }
            if before.state.isFinal { return before }
            for runId in before.cases.flatMap({ [$0.runId, $0.verifierRunId] }).compactMap({ $0 }) {
                _ = try? await store.cancelRun(tenantId: tenantId, id: runId)
            }
            var after = before
            after.state = .failed
            after.reason = "cancelled on request"
            after.updatedAt = max(Date(), before.updatedAt.addingTimeInterval(0.001))
            if try await store.updateSubmission(after, expected: before.updatedAt) { return after }
        }
        throw SandboxError(.unavailable, "submission \(id) kept changing while it was being cancelled; try again", retryAfterSeconds: 1)
    }
}
