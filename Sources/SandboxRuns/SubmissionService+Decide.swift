import Foundation
import SandboxCore
import SandboxStore

extension SubmissionService {
    /// Moves `s` forward from what the store holds now: queues the runs that are due, scores the
    /// cases whose runs are final, then the submission. Fails it (state `failed`, `reason`) only
    /// for what scoring cannot get past: its bounty or agent version gone, a run not its own.
    /// `known`: runs already read; `complete`: they are all of the submission's (a run not among
    /// them is read on its own), else only cases whose runs are known move on.
    func decide(_ s: inout SubmissionRecord, known: [String: RunRecord], complete: Bool) async throws {
        guard let bounty = try await store.bounty(tenantId: s.tenantId, id: s.bountyId) else {
            return fail(&s, "the bounty \(s.bountyId) is gone")
        }
        var quotaFull = false
        var version: AgentVersionRecord?
        var agentSpec: RunSpec?
        for i in s.cases.indices where s.cases[i].score == nil {
            let index = s.cases[i].index
            guard bounty.cases.indices.contains(index) else { return fail(&s, "case \(index) is not a case of bounty \(bounty.id)") }
            // The agent run.
            guard let runId = s.cases[i].runId else {
                if quotaFull { continue }
                if agentSpec == nil {
                    if version == nil {
                        version = try await store.agentVersion(tenantId: s.tenantId, agentId: s.agentId, digest: s.agentDigest)
                    }
                    guard let version else { return fail(&s, "the agent version \(s.agentDigest) is gone") }
                    do {
                        agentSpec = try SubmissionPlan.agentSpec(profile: try SubmissionPlan.agentProfile(bounty.profile, manifest: version.manifest),
                                                                 version: version)
                    } catch { return fail(&s, "the agent version cannot run in this bounty: \(error.message)") }
                }
                guard let spec = agentSpec else { continue }
                let run = SubmissionPlan.agentRun(s, spec: spec, input: bounty.cases[index].input, case: index)
                guard let queued = try await submit(run) else {
                    quotaFull = true
                    continue
                }
                guard owned(queued, by: s, case: index, role: "agent") else { return fail(&s, "run \(queued.id) holds this case's key but is not its agent run") }
                s.cases[i].runId = queued.id
                continue
            }
            // The agent run, until its verifier run is queued (then it is final and done with).
            guard let verifierId = s.cases[i].verifierRunId else {
                guard let found = try await lookup(runId, known, complete) else { continue }
                guard let run = found else { return fail(&s, "the agent run \(runId) is gone") }
                if run.state != .queued && s.state == .queued { s.state = .running }
                guard run.state.isFinal else { continue }
                s.cases[i].cpuMs = run.result?.usage.cpuMs ?? 0
                if let failure = SubmissionScoring.agentFailure(run) {
                    score(&s.cases[i], 0, reason: failure, message: run.reason)
                    continue
                }
                if quotaFull { continue }
                let output = try await stdout(of: run)
                let stdin = SubmissionPlan.verifierInput(input: bounty.cases[index].input, output: output, exitCode: run.result?.exitCode,
                                                         hidden: bounty.cases[index].hidden)
                let verifier: RunRecord
                do { verifier = try SubmissionPlan.verifierRun(s, bounty: bounty, stdin: stdin, case: index) } catch {
                    score(&s.cases[i], 0, reason: "verifier_error", message: "the verifier cannot run: \(error.message)")
                    continue
                }
                guard let queued = try await submit(verifier) else {
                    quotaFull = true
                    continue
                }
                guard owned(queued, by: s, case: index, role: "verifier") else { return fail(&s, "run \(queued.id) holds this case's key but is not its verifier run") }
                s.cases[i].verifierRunId = queued.id
                continue
            }
            // The verifier run.
            guard let vfound = try await lookup(verifierId, known, complete) else { continue }
            guard let vrun = vfound else { return fail(&s, "the verifier run \(verifierId) is gone") }
            guard vrun.state.isFinal else { continue }
            if let failure = SubmissionScoring.verifierFailure(vrun) {
                score(&s.cases[i], 0, reason: "verifier_error", message: failure)
                continue
            }
            switch SubmissionScoring.verdict(stdout: try await stdout(of: vrun)) {
            case .scored(let value, let message): score(&s.cases[i], value, reason: "verified", message: message)
            case .invalid(let why): score(&s.cases[i], 0, reason: "verifier_error", message: why)
            }
        }
        if let mean = SubmissionScoring.mean(s.cases) {
            s.state = .scored
            s.score = mean
        }
    }

    /// A run of the submission: `.some(nil)` when it is gone, nil when it is not to be looked at now.
    private func lookup(_ id: String, _ known: [String: RunRecord], _ complete: Bool) async throws -> RunRecord?? {
        if let run = known[id] { return .some(run) }
        guard complete else { return nil }
        return .some(try await store.run(id: id))
    }

    private func fail(_ s: inout SubmissionRecord, _ reason: String) {
        s.state = .failed
        s.reason = reason
    }

    private func score(_ c: inout SubmissionCase, _ value: Double, reason: String, message: String?) {
        c.score = value
        c.reason = reason
        c.message = message.map { String($0.prefix(2000)) }
    }

    /// A run found under a submission's key is that submission's (not a run some caller queued
    /// with a guessed key).
    private func owned(_ run: RunRecord, by s: SubmissionRecord, case index: Int, role: String) -> Bool {
        run.labels["submission"] == s.id && run.labels["case"] == String(index) && run.labels["role"] == role
    }

    /// Queues `run` (or finds it queued already by its key); nil when the tenant's queue is full.
    private func submit(_ run: RunRecord) async throws -> RunRecord? {
        do {
            return try await store.submitRun(run, maxQueued: try await maxQueued(run.tenantId)).run
        } catch let e as SandboxError where e.code == .quotaExceeded {
            return nil
        }
    }

    /// What a final run printed on stdout in its last attempt (its log, else its result), as text.
    func stdout(of run: RunRecord) async throws -> String {
        var bytes: [UInt8] = []
        if !run.attempts.isEmpty {
            for chunk in try await store.runLog(runId: run.id, attempt: run.attempts.count, afterSeq: 0) where chunk.stream == .stdout {
                bytes += chunk.data
            }
        }
        if bytes.isEmpty, let result = run.result { bytes = result.stdoutBytes }
        return String(decoding: bytes, as: UTF8.self)
    }
}
