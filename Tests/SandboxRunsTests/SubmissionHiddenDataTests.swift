import Foundation
import SandboxCore
@testable import SandboxRuns
import SandboxStore
import SandboxTestSupport
import Testing

/// Issue 21's guarantee at the queue level: a bounty case's hidden data goes to its verifier run
/// and nowhere near its agent run — not in the agent run's stored record (spec, stdin, files,
/// env, argv, labels), not in what the agent could see and print.
@Suite("Bounty hidden data stays with the verifier", .realSandboxes)
struct SubmissionHiddenDataTests {
    /// An agent that prints everything it is given or can find: its stdin, environment, files,
    /// every process's environment and command line, and any file under the usual writable or
    /// configuration trees that holds the hidden data's prefix (written split, so the script does
    /// not match itself).
    static let snoop = """
        echo "stdin: $(cat)"
        env
        ls -laR /workspace /code 2>/dev/null
        cat /workspace/* 2>/dev/null
        for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline; do tr '\\0' ' ' < "$f" 2>/dev/null; echo; done
        grep -rl "hid""den-" /workspace /code /tmp /etc /run /home /root /var/tmp 2>/dev/null
        echo snoop done
        """

    /// Whether `needle` is anywhere in a run's record: its JSON as stored, and the byte fields the
    /// JSON carries as base64 (stdin, code, files) and its output, decoded.
    static func holds(_ run: RunRecord, _ needle: String) throws -> Bool {
        let n = Array(needle.utf8)
        func has(_ bytes: [UInt8]?) -> Bool {
            guard let bytes, bytes.count >= n.count else { return false }
            return (0...(bytes.count - n.count)).contains { bytes[$0..<($0 + n.count)].elementsEqual(n) }
        }
        let json = try JSONEncoder().encode(run)
        return has(Array(json)) || has(run.spec.stdin) || has(run.spec.code) || (run.spec.files?.values.contains { has($0) } ?? false)
            || has(run.result?.stdoutBytes) || has(run.result?.stderrBytes)
    }

    @Test("every agent run of a submission is free of its case's hidden data, which every verifier run gets")
    func hiddenDataOnlyReachesTheVerifier() async throws {
        try await RunFixture.with(concurrency: 2) { f in
            let tenant = "tnt_a"
            let marker = "hidden-\(UUID().uuidString)"
            let verifier = """
                if grep -q '\(marker)'; then echo '{"score": 1, "message": "got the hidden data"}'
                else echo '{"score": 0, "message": "no hidden data"}'; fi
                """
            let bounty = try await f.store.createBounty(BountyRecord(
                tenantId: tenant, title: "echo", profile: TestSandbox.profile(),
                cases: [BountyCase(input: "first\n", hidden: marker + "-0"), BountyCase(input: "second\n", hidden: marker + "-1")],
                verifier: VerifierSpec(lang: "sh", code: verifier)))
            let agent = try await f.store.createAgent(AgentRecord(tenantId: tenant, name: "snoop"))
            let files = ["main.sh": Array(Self.snoop.utf8), "notes.txt": Array("a file of the bundle\n".utf8)]
            let digest = "sha256:" + String(repeating: "ab", count: 32)
            _ = try await f.store.putAgentVersion(AgentVersionRecord(
                digest: digest, agentId: agent.id, tenantId: tenant, manifest: AgentManifest(lang: "sh", entrypoint: "main.sh"),
                files: files, sizeBytes: files.values.reduce(0) { $0 + $1.count }, status: .accepted, findings: []))
            let submission = try await f.store.createSubmission(SubmissionRecord(
                tenantId: tenant, bountyId: bounty.id, agentId: agent.id, agentDigest: digest,
                cases: bounty.cases.indices.map { SubmissionCase(index: $0) }))

            let service = SubmissionService(store: f.store, sweepInterval: .milliseconds(200), maxQueued: { _ in 1000 })
            let task = Task { await service.run() }
            defer { task.cancel() }
            var scored = submission
            let deadline = ContinuousClock.now + .seconds(120)
            while !scored.state.isFinal {
                guard ContinuousClock.now < deadline else { Issue.record("submission still \(scored.state) after 120 s: \(scored)"); return }
                try await Task.sleep(for: .milliseconds(100))
                scored = try #require(try await f.store.submission(tenantId: tenant, id: submission.id))
            }
            task.cancel()
            await task.value

            // The verifier saw each case's hidden data: every case scores 1.
            #expect(scored.state == .scored && scored.score == 1, "\(scored)")
            #expect(scored.cases.map(\.reason) == ["verified", "verified"] && scored.cases.map(\.message) == ["got the hidden data", "got the hidden data"])
            for (i, c) in scored.cases.enumerated() {
                let agentRunId = try #require(c.runId)
                let verifierRunId = try #require(c.verifierRunId)
                let agentRun = try #require(try await f.store.run(id: agentRunId))
                let verifierRun = try #require(try await f.store.run(id: verifierRunId))
                #expect(agentRun.spec.agentDigest == digest && agentRun.labels["role"] == "agent")
                #expect(agentRun.state == .succeeded, "\(agentRun)")
                // The agent printed what it could see (the dump worked: its input and its own bundle) …
                let output = try await f.output(agentRun)
                #expect(output.contains("stdin: \(i == 0 ? "first" : "second")") && output.contains("a file of the bundle"), "\(output)")
                #expect(output.contains("snoop done"))
                // … and none of it, nor anything in its record, is hidden data.
                #expect(!output.contains(marker), "\(output)")
                #expect(try !Self.holds(agentRun, marker), "agent run \(agentRun.id) holds hidden data")
                // The same check finds the hidden data where it belongs: the verifier run's stdin.
                #expect(try Self.holds(verifierRun, marker + "-\(i)"))
                #expect(verifierRun.labels["role"] == "verifier" && verifierRun.spec.agentDigest == nil)
            }
        }
    }
}
