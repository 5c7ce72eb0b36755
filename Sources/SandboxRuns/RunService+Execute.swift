import Foundation
import OneShot
import Logging
import SandboxCore
import SandboxManager
import SandboxStore

extension RunService {
    /// One attempt: the backend runs the spec in a fresh sandbox while its output goes to the store in
    /// batches; a cancel (asked, lease lost, service stopping) kills the sandbox. Then the attempt's
    /// end goes to the store, fenced on this worker's lease.
    func execute(_ run: RunRecord, cancel: WakeSignal) async {
        guard case .admitted(let hold) = await admit(run) else { return }
        let attempt = run.attempts.count
        let buffer = RunLogBuffer(store: store, runId: run.id, attempt: attempt, cap: configuration.logCapBytes, logger: logger)
        let digests = OutputDigests()
        let output = digests.wrap(buffer.handler)
        let runner = self.runner
        let spec = run.spec
        // A ready sandbox of the warm pool when the profile has one (no setup command: that needs
        // its own phases), else a one-shot sandbox with the id the claim gave the attempt (on
        // record before it runs: a crash mid-run still names it). A pooled one's id is recorded here.
        let pool = self.pool
        // Files (an agent's bundle) need a workspace of their own: never a pooled sandbox.
        let pooled = spec.setup == nil && spec.files == nil ? await pool?.takePooled(for: spec.profile) : nil
        let sandboxId = run.attempts.last?.sandboxId ?? SandboxSpec.newID()
        if let pooled {
            RunMetrics.pooled()
            do { try await store.setAttemptSandbox(runId: run.id, worker: workerId, sandboxId: pooled.id) } catch {
                logger.notice("the attempt's sandbox id is recorded with its end instead", metadata: ["run": "\(run.id)", "error": "\(error)"])
            }
        }
        let attemptResult = await withTaskGroup(of: Result<ExecResult, any Error>?.self) { group -> Result<ExecResult, any Error> in
            group.addTask {
                if let pooled, let pool {
                    do { return .success(try await pool.runPooled(pooled, spec.execRequest, output: output)) } catch { return .failure(error) }
                }
                // The run's files seed /workspace from a private directory of this attempt, removed after it.
                do {
                    let workspace = try spec.files.map { (files) throws(SandboxError) in try RunFiles.materialize(files, runId: run.id) }
                    defer { workspace.map(RunFiles.remove) }
                    return .success(try await runner.run(profile: spec.profile, request: spec.execRequest, workspace: workspace,
                                                         setup: spec.setup.map { ExecRequest(argv: $0, timeout: spec.profile.limits.timeout) },
                                                         tenantId: run.tenantId, sandboxId: sandboxId, output: output))
                } catch { return .failure(error) }
            }
            group.addTask {
                await cancel.wait(timeout: .seconds(366 * 86_400))
                return nil
            }
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(250))
                    await buffer.flush()
                }
                return nil
            }
            var result: Result<ExecResult, any Error>?
            while let next = await group.next() {
                if let next {
                    result = next
                }
                // The backend ended (stop the others), or a cancel came (stop the backend: it kills the sandbox).
                group.cancelAll()
            }
            return result ?? .failure(CancellationError())
        }
        // A one-shot sandbox is gone: its share of the tenant's quota is free again. A pooled one
        // whose exec ended is still up: its teardown starts now, beside the recording of the end,
        // which does not wait for it (nor does a sandbox outlive a store outage's wait); the
        // attempt awaits it below (a task of its own: a stopping service does not skip it).
        let teardown: Task<Void, Never>? = attemptResult.isSuccess ? pooled.flatMap { h in pool.map { p in Task { await p.destroyPooled(h) } } } : nil
        if teardown == nil, let admission, let hold { await admission.releaseQuota(hold) }
        let stopping = Task.isCancelled
        var ended = attemptEnd(attemptResult, asked: wasCancelAsked(run.id), stopping: stopping)
        if case .success(let result) = attemptResult { ended.environment = environment(of: spec, result: result, digests: digests) }
        let end = ended
        markFinishing(run.id)
        let store = self.store
        let worker = workerId
        let policy = configuration.retry
        let logger = self.logger
        // The end is recorded even when this task was cancelled (the service stopping): a task of
        // its own that this one awaits, so the store call itself is not cancelled. While the store
        // is unreachable, the output and the end wait for it (the lease is not taken back meanwhile:
        // see `heartbeats`); after `recordPatience` without it, the lease rules run the attempt again.
        let health = store.health
        let finished = await Task { () -> RunRecord? in
            let giveUp = ContinuousClock.now + Self.recordPatience
            while true {
                await buffer.flush()
                do {
                    if buffer.isEmpty {
                        return try await store.finishAttempt(runId: run.id, worker: worker, end, policy: policy)
                    }
                } catch {
                    if !StoreHealth.isOutage(error) || ContinuousClock.now > giveUp {
                        logger.error("could not record the end of a run's attempt (its lease will expire and it runs again)",
                                     metadata: ["run": "\(run.id)", "error": "\(error)"])
                        return nil
                    }
                }
                if ContinuousClock.now > giveUp { return nil }
                logger.notice("the store is unreachable; the run's end waits for it", metadata: ["run": "\(run.id)"])
                _ = await health.waitUntilUp(atMost: giveUp - ContinuousClock.now)
            }
        }.value
        // The pooled sandbox's teardown ends within this attempt; its quota share is released
        // only once it is gone.
        if let teardown {
            await teardown.value
            if let admission, let hold { await admission.releaseQuota(hold) }
        }
        if let finished {
            RunMetrics.finished(finished, attempt: end.outcome)
            logger.info("run attempt ended", metadata: [
                "run": "\(run.id)", "attempt": "\(attempt)", "outcome": "\(end.outcome.rawValue)", "state": "\(finished.state.rawValue)"])
        } else {
            logger.warning("run attempt ended after this worker lost its lease; the result is dropped", metadata: ["run": "\(run.id)"])
        }
        self.finished(run.id)
    }

    /// Whether a claimed run starts here now.
    enum Admission {
        /// Go on, holding this share of the tenant's quota (nil: nothing is counted).
        case admitted(UUID?)
        /// The run went back to the queue (the tenant is at its quota: due again when the quota
        /// says to retry), or could not be handed back (its lease expires instead).
        case handedBack
    }

    /// Holds the tenant's quota for the attempt, or hands the run back to the queue.
    func admit(_ run: RunRecord) async -> Admission {
        guard let admission else { return .admitted(nil) }
        do {
            return .admitted(try await admission.holdQuota(tenantId: run.tenantId, profile: run.spec.profile))
        } catch {
            let e = error as? SandboxError
            guard e?.code == .quotaExceeded else { return .admitted(nil) }  // the backend reports anything else
            let wait = Double(e?.retryAfterSeconds ?? 5)
            let reason = "waiting for the tenant's quota: \(e?.message ?? "")"
            do {
                _ = try await store.handBack(runId: run.id, worker: workerId, until: Date().addingTimeInterval(min(wait, 5)), reason: reason)
                RunMetrics.handedBack(run)
                logger.info("run handed back: its tenant is at its quota", metadata: ["run": "\(run.id)", "tenant": "\(run.tenantId)"])
            } catch {
                logger.warning("could not hand a run back (its lease will expire)", metadata: ["run": "\(run.id)", "error": "\(error)"])
            }
            finished(run.id)
            return .handedBack
        }
    }

    /// How long a finished attempt waits for an unreachable store to record its output and end.
    static let recordPatience: Duration = .seconds(600)

    /// How the attempt ended, from the backend's result or error.
    nonisolated func attemptEnd(_ result: Result<ExecResult, any Error>, asked: Bool, stopping: Bool) -> AttemptEnd {
        let stoppedHere = "this worker stopped mid-run (\(stopping ? "the server is shutting down" : "its lease was taken back"))"
        switch result {
        case .success(let r):
            if r.outcome == .cancelled {
                return asked
                    ? AttemptEnd(outcome: .cancelled, reason: "cancelled on request; the sandbox was killed", result: r, sandboxId: r.sandboxId)
                    : AttemptEnd(outcome: .workerLost, reason: stoppedHere, result: r, sandboxId: r.sandboxId)
            }
            let outcome = RunRules.outcome(of: r)
            return AttemptEnd(outcome: outcome, reason: r.reason ?? Self.describe(r), result: r, sandboxId: r.sandboxId)
        case .failure(let error):
            if error is CancellationError {
                return asked ? AttemptEnd(outcome: .cancelled, reason: "cancelled on request") : AttemptEnd(outcome: .workerLost, reason: stoppedHere)
            }
            guard let e = error as? SandboxError else { return AttemptEnd(outcome: .setupFailed, reason: "\(error)") }
            switch e.code {
            case .limitExceeded, .invalidRequest, .notFound, .hostUnsupported, .unauthorized, .forbidden, .quotaExceeded, .setupCommandFailed:
                return AttemptEnd(outcome: .rejected, reason: e.message)
            case .sandboxLost:
                return AttemptEnd(outcome: .agentLost, reason: e.message)
            case .setupFailed, .system, .invalidState, .insufficientStorage, .unavailable, .storeUnavailable:
                return AttemptEnd(outcome: .setupFailed, reason: e.message)
            }
        }
    }

    static func describe(_ r: ExecResult) -> String {
        switch r.outcome {
        case .ok: return "exit 0"
        case .exitNonzero: return "exit \(r.exitCode.map(String.init) ?? "?")" + (r.signal.map { " (signal \($0))" } ?? "")
        default: return r.outcome.rawValue
        }
    }
}

extension Result {
    var isSuccess: Bool {
        if case .success = self { return true }
        return false
    }
}
