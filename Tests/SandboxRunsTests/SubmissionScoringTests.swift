import Foundation
import SandboxCore
import SandboxRuns
import SandboxStore
import Testing

/// The scoring rules of bounty submissions: what a verifier's output is worth, which agent run
/// endings score 0 without a verifier, the mean, and the leaderboard's order.
@Suite("Submission scoring rules")
struct SubmissionScoringTests {
    @Test("a verifier's one JSON object scores the case; anything else is a verifier error")
    func verdicts() {
        #expect(SubmissionScoring.verdict(stdout: "{\"score\": 1, \"message\": \"sorted\"}\n") == .scored(1, message: "sorted"))
        #expect(SubmissionScoring.verdict(stdout: "  {\"score\": 0.25}  ") == .scored(0.25, message: nil))
        #expect(SubmissionScoring.verdict(stdout: "checking…\n{\"score\": 0, \"message\": \"wrong\"}\n") == .scored(0, message: "wrong"),
                "the last line, when other lines came first")
        for garbage in ["", "not json", "[1]", "{\"message\": \"no score\"}", "{\"score\": \"1\"}", "{\"score\": true}", "{\"score\": 1.5}",
                        "{\"score\": -0.1}", "{\"score\": null}", "{\"score\": 1} trailing"] {
            guard case .invalid(let why) = SubmissionScoring.verdict(stdout: garbage) else {
                Issue.record("\(garbage.debugDescription) should be a verifier error")
                continue
            }
            #expect(!why.isEmpty)
        }
    }

    static func run(_ state: RunState, _ result: ExecResult?) -> RunRecord {
        var r = RunRecord(id: "run-1", tenantId: "t", state: state, spec: RunSpec(profile: .bounty, argv: ["true"]))
        r.result = result
        return r
    }

    static func result(_ outcome: Outcome, exit: Int32? = 0, signal: Int32? = nil) -> ExecResult {
        ExecResult(sandboxId: "s", outcome: outcome, exitCode: exit, signal: signal)
    }

    @Test("an agent run that timed out, hit a limit, crashed, was cancelled or died scores 0 with that outcome; an exit of its own goes to the verifier")
    func agentOutcomes() {
        #expect(SubmissionScoring.agentFailure(Self.run(.succeeded, Self.result(.ok))) == nil)
        #expect(SubmissionScoring.agentFailure(Self.run(.failed, Self.result(.exitNonzero, exit: 3))) == nil)
        #expect(SubmissionScoring.agentFailure(Self.run(.timedOut, Self.result(.timeout, exit: nil))) == "timed_out")
        #expect(SubmissionScoring.agentFailure(Self.run(.failed, Self.result(.oom, exit: nil))) == "oom")
        #expect(SubmissionScoring.agentFailure(Self.run(.failed, Self.result(.pidsLimit, exit: 1))) == "pids_limit")
        #expect(SubmissionScoring.agentFailure(Self.run(.failed, Self.result(.diskLimit, exit: 1))) == "disk_limit")
        #expect(SubmissionScoring.agentFailure(Self.run(.succeeded, Self.result(.outputTruncated, exit: 0))) == "output_truncated")
        #expect(SubmissionScoring.agentFailure(Self.run(.failed, Self.result(.exitNonzero, exit: 139, signal: 11))) == "crashed")
        #expect(SubmissionScoring.agentFailure(Self.run(.failed, Self.result(.killed, exit: nil))) == "killed")
        #expect(SubmissionScoring.agentFailure(Self.run(.cancelled, nil)) == "cancelled")
        #expect(SubmissionScoring.agentFailure(Self.run(.dead, nil)) == "dead")
        #expect(SubmissionScoring.agentFailure(Self.run(.failed, nil)) == "rejected")
    }

    @Test("a verifier run counts only when it exited 0 on its own")
    func verifierOutcomes() {
        #expect(SubmissionScoring.verifierFailure(Self.run(.succeeded, Self.result(.ok))) == nil)
        #expect(SubmissionScoring.verifierFailure(Self.run(.failed, Self.result(.exitNonzero, exit: 1)))?.contains("exit 1") == true)
        #expect(SubmissionScoring.verifierFailure(Self.run(.timedOut, Self.result(.timeout, exit: nil)))?.contains("timed_out") == true)
    }

    @Test("the score is the mean of the case scores, once every case has one")
    func mean() {
        #expect(SubmissionScoring.mean([SubmissionCase(index: 0, score: 1), SubmissionCase(index: 1, score: 0), SubmissionCase(index: 2, score: 0.5)]) == 0.5)
        #expect(SubmissionScoring.mean([SubmissionCase(index: 0, score: 1), SubmissionCase(index: 1)]) == nil)
        #expect(SubmissionScoring.mean([]) == nil)
    }

    static func submission(_ agent: String, score: Double?, at: Double, cpu: Double, state: SubmissionState = .scored) -> SubmissionRecord {
        SubmissionRecord(tenantId: "t", bountyId: "bnt-1", agentId: agent, agentDigest: "sha256:\(agent)-\(at)", state: state, score: score,
                         cases: [SubmissionCase(index: 0, score: score, cpuMs: cpu)], createdAt: Date(timeIntervalSinceReferenceDate: at))
    }

    @Test("the leaderboard: each agent's best scored submission, by score; ties to the earlier submission, then the lower CPU time")
    func leaderboard() {
        let subs = [
            Self.submission("agt-a", score: 0.5, at: 10, cpu: 5),
            Self.submission("agt-a", score: 1.0, at: 20, cpu: 9),   // a's best
            Self.submission("agt-b", score: 1.0, at: 15, cpu: 50),  // ties a's best, earlier: above a
            Self.submission("agt-c", score: 0.5, at: 30, cpu: 1),
            Self.submission("agt-d", score: 0.5, at: 30, cpu: 0.5),  // ties c at the same time, less CPU: above c
            Self.submission("agt-e", score: nil, at: 1, cpu: 0, state: .running),  // not scored: not listed
            Self.submission("agt-f", score: nil, at: 1, cpu: 0, state: .failed),
        ]
        let entries = Leaderboard.rank(subs, agentNames: ["agt-a": "alpha", "agt-b": "beta"])
        #expect(entries.map(\.agentId) == ["agt-b", "agt-a", "agt-d", "agt-c"])
        #expect(entries.map(\.rank) == [1, 2, 3, 4])
        #expect(entries.map(\.agent) == ["beta", "alpha", "agt-d", "agt-c"], "the name when known")
        #expect(entries[1].submissionId == subs[1].id && entries[1].score == 1 && entries[1].cpuMs == 9)
        // The best of one agent: an equal score later does not replace the earlier one.
        let again = Leaderboard.rank([Self.submission("agt-a", score: 1, at: 1, cpu: 3), Self.submission("agt-a", score: 1, at: 2, cpu: 1)], agentNames: [:])
        #expect(again.count == 1 && again[0].createdAt == Date(timeIntervalSinceReferenceDate: 1))
    }

    @Test("an agent version runs under the bounty's profile with its isolation and lower limits; more than the profile allows is refused")
    func agentProfile() throws {
        var manifest = AgentManifest(lang: "js", entrypoint: "src/main.js", isolation: "wasm", limits: ["timeout": "5s", "memory": "64M"])
        let profile = try SubmissionPlan.agentProfile(.bounty, manifest: manifest)
        #expect(profile.isolation == .wasm && profile.limits.timeout == .seconds(5) && profile.limits.memoryBytes == 64 << 20)
        #expect(profile.limits.pids == Profile.bounty.limits.pids)
        let version = AgentVersionRecord(digest: "sha256:x", agentId: "agt-1", tenantId: "t", manifest: manifest,
                                         files: ["src/main.js": Array("print(1)".utf8), "lib/a.js": []], sizeBytes: 8, status: .accepted, findings: [])
        let spec = try SubmissionPlan.agentSpec(profile: profile, version: version)
        #expect(spec.argv.isEmpty && spec.code == Array("print(1)".utf8) && spec.codeFileName == "main.js" && spec.files?.count == 2)
        #expect(spec.agentDigest == "sha256:x" && spec.stdin == nil)
        manifest.isolation = "container"
        manifest.lang = "python"
        manifest.entrypoint = "main.py"
        let python = AgentVersionRecord(digest: "sha256:y", agentId: "agt-1", tenantId: "t", manifest: manifest, files: ["main.py": []],
                                        sizeBytes: 0, status: .accepted, findings: [])
        #expect(try SubmissionPlan.agentSpec(profile: try SubmissionPlan.agentProfile(.bounty, manifest: manifest), version: python).argv
                == ["python3", "-u", "/workspace/main.py"])
        manifest.limits = ["memory": "1G"]
        #expect(throws: SandboxError.self) { try SubmissionPlan.agentProfile(.bounty, manifest: manifest) }
        manifest.limits = [:]
        manifest.tools = ["http_get"]
        #expect(throws: SandboxError.self) { try SubmissionPlan.agentProfile(.bounty, manifest: manifest) }
        // A bounty profile stronger than a container is not weakened by a manifest; a container one takes any isolation.
        manifest.tools = []
        var gvisor = Profile.bounty
        gvisor.isolation = .gvisor
        #expect(throws: SandboxError.self) { try SubmissionPlan.agentProfile(gvisor, manifest: manifest) }
        manifest.isolation = "gvisor"
        #expect(try SubmissionPlan.agentProfile(gvisor, manifest: manifest).isolation == .gvisor)
    }

    @Test("a run's files may only land inside /workspace")
    func filePaths() {
        for ok in ["main.py", "src/a/b.js", ".hidden", "a..b"] { #expect(RunFiles.problem(path: ok) == nil, "\(ok)") }
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "a//b", "./a", "a/.", "a\u{0}b"] { #expect(RunFiles.problem(path: bad) != nil, "\(bad)") }
    }
}
