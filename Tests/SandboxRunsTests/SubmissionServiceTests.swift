import Foundation
import SandboxCore
import SandboxRuns
import SandboxStore
import Testing

/// The submission service on a real store, with this test as the run queue's worker (it claims
/// the runs the service queued and records how they ended): what it queues per case, that a new
/// service carries on where a stopped one left off, and that two services at once queue nothing twice.
@Suite("Submission service")
struct SubmissionServiceTests {
    struct Fixture {
        let store: SQLiteStore
        let bounty: BountyRecord
        let submission: SubmissionRecord

        func service() -> SubmissionService { SubmissionService(store: store) { _ in 100 } }

        /// Plays a worker: claims every queued run and ends it with `stdout` (per role).
        func work(_ stdout: (RunRecord) -> String) async throws -> [RunRecord] {
            let claimed = try await store.claimRuns(worker: "w#1", limit: 100, tenantCap: 100, lease: .seconds(60))
            for run in claimed {
                let out = stdout(run)
                try await store.appendRunLog(runId: run.id, attempt: run.attempts.count, chunks: [RunLogChunk(seq: 1, stream: .stdout, data: Array(out.utf8))], cap: 1 << 20)
                let result = ExecResult(sandboxId: "sbx", outcome: .ok, exitCode: 0, signal: nil, usage: Usage(wallMs: 10, cpuMs: 7))
                _ = try await store.finishAttempt(runId: run.id, worker: "w#1", AttemptEnd(outcome: .succeeded, result: result), policy: RetryPolicy())
            }
            return claimed
        }

        func runs() async throws -> [RunRecord] {
            try await store.runs(RunQuery(tenantId: submission.tenantId, labels: ["submission": submission.id], limit: 1000)).items
        }

        func current() async throws -> SubmissionRecord { try #require(try await store.submission(tenantId: submission.tenantId, id: submission.id)) }
    }

    static func with(_ body: (Fixture) async throws -> Void) async throws {
        let root = NSTemporaryDirectory() + "sbx-subs-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let store = try SQLiteStore(directory: root)
        defer { try? store.close() }
        let tenant = "tnt_subs"
        let agent = try await store.createAgent(AgentRecord(tenantId: tenant, name: "sorter"))
        let version = AgentVersionRecord(digest: "sha256:" + String(repeating: "1", count: 64), agentId: agent.id, tenantId: tenant,
                                         manifest: AgentManifest(lang: "python", entrypoint: "main.py"),
                                         files: ["main.py": Array("print(input())".utf8)], sizeBytes: 14, status: .accepted, findings: [])
        _ = try await store.putAgentVersion(version)
        let bounty = try await store.createBounty(BountyRecord(
            tenantId: tenant, title: "echo", profile: .bounty,
            cases: [BountyCase(input: "in-0", hidden: "SECRET-0"), BountyCase(input: "in-1", hidden: "SECRET-1"), BountyCase(input: "in-2", hidden: "SECRET-2")],
            verifier: VerifierSpec(lang: "python", code: "print('{}')")))
        let submission = try await store.createSubmission(SubmissionRecord(
            tenantId: tenant, bountyId: bounty.id, agentId: agent.id, agentDigest: version.digest, cases: (0..<3).map { SubmissionCase(index: $0) }))
        try await body(Fixture(store: store, bounty: bounty, submission: submission))
    }

    @Test("one agent run per case with the case's input and the version's files, never the hidden data; then one verifier run per case that gets it")
    func runsPerCase() async throws {
        try await Self.with { f in
            await f.service().advance(tenantId: f.submission.tenantId, id: f.submission.id)
            let agents = try await f.runs()
            #expect(agents.count == 3 && agents.allSatisfy { $0.labels["role"] == "agent" && $0.labels["bounty"] == f.bounty.id })
            for run in agents {
                let index = try #require(Int(run.labels["case"] ?? ""))
                #expect(run.spec.stdin == Array("in-\(index)".utf8))
                #expect(run.spec.files?["main.py"] == Array("print(input())".utf8) && run.spec.argv == ["python3", "-u", "/workspace/main.py"])
                #expect(run.spec.agentDigest == f.submission.agentDigest)
                let stored = try JSONColumn.encode(run)
                #expect(!stored.contains("SECRET"), "the hidden data is nowhere in an agent run: \(stored)")
            }
            #expect(try await f.current().cases.allSatisfy { $0.runId != nil && $0.verifierRunId == nil })
            _ = try await f.work { _ in "agent-output\n" }
            await f.service().advance(tenantId: f.submission.tenantId, id: f.submission.id)
            let verifiers = try await f.runs().filter { $0.labels["role"] == "verifier" }
            #expect(verifiers.count == 3)
            for run in verifiers {
                let index = try #require(Int(run.labels["case"] ?? ""))
                let stdin = try #require(try JSONSerialization.jsonObject(with: Data(run.spec.stdin ?? [])) as? [String: Any])
                #expect(stdin["input"] as? String == "in-\(index)" && stdin["output"] as? String == "agent-output\n")
                #expect(stdin["hidden"] as? String == "SECRET-\(index)" && stdin["exit_code"] as? Int == 0)
            }
        }
    }

    @Test("a service that stopped half-way: a new one finishes the submission from the store, queueing nothing twice, even with two at once")
    func restart() async throws {
        try await Self.with { f in
            // The first service queues the agent runs, then stops (it is dropped).
            await f.service().advance(tenantId: f.submission.tenantId, id: f.submission.id)
            #expect(try await f.current().state == .queued)
            let claimed = try await f.work { _ in "out\n" }
            #expect(claimed.count == 3)
            // Two new services sweep at once: each case gets one verifier run.
            let (a, b) = (f.service(), f.service())
            async let sweepA: Void = a.sweep()
            async let sweepB: Void = b.sweep()
            _ = await (sweepA, sweepB)
            #expect(try await f.runs().count == 6, "3 agent runs and 3 verifier runs, none twice")
            #expect(try await f.current().state == .running)
            let verified = try await f.work { run in run.labels["case"] == "1" ? "{\"score\": 0.5, \"message\": \"half\"}" : "{\"score\": 1}" }
            #expect(verified.count == 3 && verified.allSatisfy { $0.labels["role"] == "verifier" })
            await b.sweep()
            let done = try await f.current()
            #expect(done.state == .scored && done.score == (1 + 0.5 + 1) / 3)
            #expect(done.cases.map(\.reason) == ["verified", "verified", "verified"] && done.cases[1].message == "half")
            #expect(done.cpuMs == 21, "the agent runs' CPU time")
            // Finished: later sweeps change nothing.
            await a.sweep()
            #expect(try await f.current() == done)
        }
    }

    @Test("a cancelled submission cancels its queued runs and ends failed")
    func cancel() async throws {
        try await Self.with { f in
            let service = f.service()
            await service.advance(tenantId: f.submission.tenantId, id: f.submission.id)
            let cancelled = try #require(try await service.cancel(tenantId: f.submission.tenantId, id: f.submission.id))
            #expect(cancelled.state == .failed && cancelled.reason == "cancelled on request")
            #expect(try await f.runs().allSatisfy { $0.state == .cancelled })
            #expect(try await service.cancel(tenantId: "tnt_other", id: f.submission.id) == nil, "another tenant's is not found")
        }
    }

    @Test("a run's change moves its own case on (one read, not one per case); a sweep moves every case")
    func changeThenSweep() async throws {
        try await Self.with { f in
            let service = f.service()
            await service.advance(tenantId: f.submission.tenantId, id: f.submission.id)
            let finished = try await f.work { _ in "out\n" }
            let case1Id = try #require(finished.first { $0.labels["case"] == "1" }?.id)
            let case1 = try #require(try await f.store.run(id: case1Id))
            await service.advance(tenantId: f.submission.tenantId, id: f.submission.id, changed: case1)
            #expect(try await f.current().cases.map { $0.verifierRunId != nil } == [false, true, false])
            await service.sweep()
            #expect(try await f.current().cases.allSatisfy { $0.verifierRunId != nil })
            #expect(try await f.runs().count == 6)
        }
    }

    @Test("a running service is woken by its runs' changes: with no sweep due, the submission is scored as its runs end")
    func wokenByChanges() async throws {
        try await Self.with { f in
            // One sweep at start (it queues the agent runs), the next one not due within the test.
            let service = SubmissionService(store: f.store, sweepInterval: .seconds(3600)) { _ in 100 }
            let task = Task { await service.run() }
            defer { task.cancel() }
            func until(_ done: (SubmissionRecord) -> Bool) async throws -> SubmissionRecord {
                for _ in 0..<600 {
                    let s = try await f.current()
                    if done(s) { return s }
                    try await Task.sleep(for: .milliseconds(50))
                }
                return try await f.current()
            }
            _ = try await until { $0.cases.allSatisfy { $0.runId != nil } }
            _ = try await f.work { _ in "out\n" }
            let verifying = try await until { $0.cases.allSatisfy { $0.verifierRunId != nil } }
            #expect(verifying.cases.allSatisfy { $0.verifierRunId != nil }, "verifier runs queued on the agent runs' changes")
            _ = try await f.work { _ in "{\"score\": 1}" }
            let scored = try await until { $0.state == .scored }
            #expect(scored.state == .scored && scored.score == 1)
            task.cancel()
            await task.value
        }
    }

    @Test("a tenant's max_queued holds for a submission's runs: what fits is queued, the rest once the queue has room")
    func maxQueued() async throws {
        try await Self.with { f in
            let service = SubmissionService(store: f.store) { _ in 2 }
            await service.advance(tenantId: f.submission.tenantId, id: f.submission.id)
            #expect(try await f.current().cases.map { $0.runId != nil } == [true, true, false])
            #expect(try await f.runs().count == 2)
            _ = try await f.store.claimRuns(worker: "w#1", limit: 10, tenantCap: 10, lease: .seconds(60))
            await service.sweep()
            #expect(try await f.current().cases.allSatisfy { $0.runId != nil })
            #expect(try await f.runs().count == 3)
        }
    }
}
