import Foundation
import SandboxCommands
import SandboxCore
import SandboxStore
import SandboxTestSupport
import Testing

/// Bounties end to end over real HTTP with real runs on the `debian` template: agents created
/// through the store, submitted to a bounty whose Python verifier holds the expected output as
/// hidden data; scored, ranked, and another tenant sees none of it.
@Suite("Bounties over HTTP", .serialized, .realSandboxes, .requires("requires mmdebstrap and skopeo (make test installs them)") {
    ["/usr/bin/mmdebstrap", "/usr/bin/skopeo"].allSatisfy { FileManager.default.isExecutableFile(atPath: $0) } ? nil : "mmdebstrap or skopeo is missing"
})
struct BountyServerTests {
    static let verifier = """
        import json, sys
        case = json.load(sys.stdin)
        ok = case["output"].split() == case["hidden"].split("#")[0].split()
        print(json.dumps({"score": 1 if ok else 0, "message": "sorted" if ok else "not sorted"}))
        """

    /// An agent with one accepted (or blocked) version, straight through the store.
    static func agent(_ app: ServedApp, tenant: String, name: String, code: String, limits: [String: String] = [:],
                      status: AgentVersionStatus = .accepted, findings: [ScanFinding] = [],
                      files: [String: String] = ["lib/helper.txt": "helper"]) async throws -> (id: String, digest: String) {
        let agent = try await app.store.createAgent(AgentRecord(tenantId: tenant, name: name))
        let digest = "sha256:" + (UUID().uuidString + UUID().uuidString).replacingOccurrences(of: "-", with: "").lowercased()
        var all = files.mapValues { Array($0.utf8) }
        all["main.py"] = Array(code.utf8)
        _ = try await app.store.putAgentVersion(AgentVersionRecord(
            digest: digest, agentId: agent.id, tenantId: tenant, manifest: AgentManifest(lang: "python", entrypoint: "main.py", limits: limits),
            files: all, sizeBytes: all.values.reduce(0) { $0 + $1.count }, status: status, findings: findings))
        return (agent.id, digest)
    }

    static func object(_ bytes: [UInt8]) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any], "\(bytes.text)")
    }

    @Test("a right agent scores 1, a wrong one 0, a sleeping one 0 timed_out, a garbage verifier verifier_error; the leaderboard ranks them; blocked and greedy versions are refused; another tenant gets 404")
    func endToEnd() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: SecretCLITests.executable), "build the sandboxer executable first (swift build)")
        let data = NSTemporaryDirectory() + "sandboxer-bounty-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: data) }
        let base = try await SecretCLITests.run(["template", "base", "--data", data])
        try #require(base.status == 0, "\(base.err)")
        try await ServedApp.with(dataDirectory: data) { app in
            let created = try await app.store.createAPIKey(tenantName: "market")
            let tenant = created.record.tenantId
            let client = try app.client(created.key)
            let stranger = try app.client(try await app.key("stranger"))

            let bountyReply = try await client.checked("POST", "/v1/bounties", body: try jsonBytes([
                "title": "sort these numbers",
                "cases": [["input": "3 1 2", "hidden": "1 2 3 # hidden-0"], ["input": "9 7 8", "hidden": "7 8 9 # hidden-1"]],
                "verifier": ["lang": "python", "code": Self.verifier],
            ]))
            #expect(bountyReply.status == 201)
            let bounty = try Self.object(bountyReply.body)
            let bountyId = try #require(bounty["id"] as? String)
            #expect(bountyId.hasPrefix("bnt-") && bounty["profile"] as? String == "bounty" && bounty["case_count"] as? Int == 2)
            let shown = try await client.checked("GET", "/v1/bounties/\(bountyId)").body.text
            #expect(!shown.contains("hidden-0") && !shown.contains("hidden-1"), "the hidden data is never shown: \(shown)")
            #expect(try await client.checked("GET", "/v1/bounties").body.text.contains(bountyId))

            // The right agent imports its own module from /workspace/lib: the version's files are there.
            let right = try await Self.agent(app, tenant: tenant, name: "right",
                                             code: "import sys\nsys.path.insert(0, '/workspace/lib')\nfrom helper import solve\nprint(solve(sys.stdin.read()))\n",
                                             files: ["lib/helper.py": "def solve(text):\n    return ' '.join(sorted(text.split()))\n"])
            let wrong = try await Self.agent(app, tenant: tenant, name: "wrong", code: "import sys\nprint(sys.stdin.read())\n")
            let sleeper = try await Self.agent(app, tenant: tenant, name: "sleeper", code: "import time\ntime.sleep(60)\n", limits: ["timeout": "2s"])
            let blocked = try await Self.agent(app, tenant: tenant, name: "blocked", code: "print(1)\n", status: .blocked,
                                               findings: [ScanFinding(code: "path_traversal", message: "'../x' leaves the bundle", path: "../x")])
            let greedy = try await Self.agent(app, tenant: tenant, name: "greedy", code: "print(1)\n", limits: ["memory": "2G"])

            // Refusals: unknown version 404, blocked 422 with its findings, beyond the profile 422.
            let unknown = try await client.send("POST", "/v1/bounties/\(bountyId)/submissions", body: try jsonBytes(["agent_version": "sha256:" + String(repeating: "0", count: 64)]))
            _ = try ProblemBody.of(unknown, status: 404, code: "not_found")
            let refused = try await client.send("POST", "/v1/bounties/\(bountyId)/submissions", body: try jsonBytes(["agent_version": blocked.digest]))
            _ = try ProblemBody.of(refused, status: 422, code: "agent_blocked")
            let findings = try #require(try Self.object(refused.body)["findings"] as? [[String: Any]])
            #expect(findings.first?["code"] as? String == "path_traversal" && findings.first?["path"] as? String == "../x")
            let tooMuch = try await client.send("POST", "/v1/bounties/\(bountyId)/submissions", body: try jsonBytes(["agent_version": greedy.digest]))
            #expect(try ProblemBody.of(tooMuch, status: 422, code: "limit_exceeded").detail.contains("memory"))

            var ids: [String: String] = [:]
            for (name, agent) in [("right", right), ("wrong", wrong), ("sleeper", sleeper)] {
                let reply = try await client.checked("POST", "/v1/bounties/\(bountyId)/submissions", body: try jsonBytes(["agent_version": agent.digest]))
                #expect(reply.status == 202)
                let sub = try Self.object(reply.body)
                ids[name] = try #require(sub["id"] as? String)
                #expect((sub["id"] as? String)?.hasPrefix("sub-") == true && ["queued", "running"].contains(sub["state"] as? String))
            }
            // A bounty whose verifier prints garbage.
            let garbage = try Self.object(try await client.checked("POST", "/v1/bounties", body: try jsonBytes([
                "title": "garbage", "cases": [["input": "1", "hidden": "1"]], "verifier": ["lang": "python", "code": "print('not json')"],
            ])).body)
            let garbageBounty = try #require(garbage["id"] as? String)
            ids["garbage"] = try #require(try Self.object(try await client.checked("POST", "/v1/bounties/\(garbageBounty)/submissions",
                                                                                    body: try jsonBytes(["agent_version": right.digest])).body)["id"] as? String)

            // Every submission ends (bounded wait: a stuck one fails the test with its state).
            var done: [String: [String: Any]] = [:]
            for _ in 0..<900 where done.count < ids.count {
                for (name, id) in ids where done[name] == nil {
                    let s = try Self.object(try await client.checked("GET", "/v1/submissions/\(id)").body)
                    if ["scored", "failed"].contains(s["state"] as? String) { done[name] = s }
                }
                try await Task.sleep(for: .milliseconds(200))
            }
            try #require(done.count == ids.count, "submissions not finished: \(Set(ids.keys).subtracting(done.keys))")
            func cases(_ name: String) -> [[String: Any]] { done[name]?["cases"] as? [[String: Any]] ?? [] }
            #expect(done["right"]?["state"] as? String == "scored" && done["right"]?["score"] as? Double == 1, "\(done["right"] ?? [:])")
            #expect(cases("right").allSatisfy { $0["reason"] as? String == "verified" && $0["message"] as? String == "sorted" && $0["verifier_run_id"] is String })
            #expect(done["right"]?["agent_version"] as? String == right.digest && done["right"]?["bounty_id"] as? String == bountyId)
            #expect(done["wrong"]?["score"] as? Double == 0 && cases("wrong").allSatisfy { $0["reason"] as? String == "verified" && $0["message"] as? String == "not sorted" })
            #expect(done["sleeper"]?["score"] as? Double == 0 && cases("sleeper").allSatisfy { $0["reason"] as? String == "timed_out" && $0["verifier_run_id"] is NSNull },
                    "\(done["sleeper"] ?? [:])")
            #expect(done["garbage"]?["score"] as? Double == 0 && cases("garbage").first?["reason"] as? String == "verifier_error", "\(done["garbage"] ?? [:])")

            // The agent's run: its files in /workspace, the case input on stdin, never the hidden data.
            let agentRunId = try #require(cases("right").first?["run_id"] as? String)
            let agentRun = try await client.checked("GET", "/v1/runs/\(agentRunId)").body.text
            #expect(agentRun.contains("\"role\":\"agent\"") && agentRun.contains("\"submission\":\"\(ids["right"]!)\""), "\(agentRun)")
            #expect(!agentRun.contains("hidden-0") && !agentRun.contains("hidden-1"), "no hidden data in the agent run: \(agentRun)" as Comment)

            let board = try Self.object(try await client.checked("GET", "/v1/bounties/\(bountyId)/leaderboard").body)
            let entries = try #require(board["entries"] as? [[String: Any]])
            // wrong and sleeper tie at 0: the earlier submission first.
            #expect(entries.map { $0["agent"] as? String } == ["right", "wrong", "sleeper"], "\(entries)")
            #expect(entries.map { $0["rank"] as? Int } == [1, 2, 3] && entries.first?["submission_id"] as? String == ids["right"])
            #expect(entries.first?["digest"] as? String == right.digest && (entries.first?["cpu_ms"] as? Double ?? -1) >= 0)

            // The tenant's trail: both bounties and the four submissions.
            let trail = try await client.checked("GET", "/v1/audit").body.text.split(separator: "\n")
            #expect(trail.filter { $0.contains("\"kind\":\"bounty.create\"") }.count == 2, "\(trail)")
            #expect(trail.filter { $0.contains("\"kind\":\"submission.create\"") }.count == 4 && trail.contains { $0.contains(ids["right"]!) })

            // Another tenant: none of it exists.
            for path in ["/v1/bounties/\(bountyId)", "/v1/bounties/\(bountyId)/leaderboard", "/v1/submissions/\(ids["right"]!)"] {
                _ = try ProblemBody.of(try await stranger.send("GET", path), status: 404, code: "not_found")
            }
            _ = try ProblemBody.of(try await stranger.send("POST", "/v1/bounties/\(bountyId)/submissions", body: try jsonBytes(["agent_version": right.digest])),
                                   status: 404, code: "not_found")
            #expect(!(try await stranger.checked("GET", "/v1/bounties").body.text.contains(bountyId)))
        }
    }
}

/// The bounty routes' refusals, which need no sandbox.
@Suite("Bounty route checks")
struct BountyRouteTests {
    @Test("a bounty is refused with a 400 naming the field: no cases, an unknown profile (listing the known ones), an unknown verifier language; an input over the profile's limit is 413")
    func validation() async throws {
        try await ServedApp.with { app in
            let client = try app.client(try await app.key("market"))
            let verifier: [String: Any] = ["lang": "python", "code": "print(1)"]
            func post(_ body: [String: Any]) async throws -> APIClient.Reply { try await client.send("POST", "/v1/bounties", body: try jsonBytes(body)) }
            #expect(try ProblemBody.of(try await post(["title": "t", "cases": [], "verifier": verifier]), status: 400, code: "invalid_request").field == "cases")
            let profile = try ProblemBody.of(try await post(["title": "t", "profile": "nope", "cases": [["input": "1"]], "verifier": verifier]),
                                             status: 400, code: "invalid_request")
            #expect(profile.field == "profile" && profile.detail.contains("bounty") && profile.detail.contains("default"), "\(profile.detail)")
            let lang = try ProblemBody.of(try await post(["title": "t", "cases": [["input": "1"]], "verifier": ["lang": "cobol", "code": "x"]]),
                                          status: 400, code: "invalid_request")
            #expect(lang.field == "verifier.lang")
            #expect(try ProblemBody.of(try await post(["title": "t", "cases": [["input": "1", "extra": 1]], "verifier": verifier]),
                                       status: 400, code: "invalid_request").field == "cases[0].extra")
            let big = String(repeating: "x", count: (1 << 20) + 1)
            let over = try ProblemBody.of(try await post(["title": "t", "cases": [["input": "1"], ["input": big]], "verifier": verifier]),
                                          status: 413, code: "limit_exceeded")
            #expect(over.name == "input_bytes" && over.detail.contains("cases[1].input"))
            _ = try ProblemBody.of(try await client.send("GET", "/v1/bounties/bnt-000000000000"), status: 404, code: "not_found")
            _ = try ProblemBody.of(try await client.send("GET", "/v1/submissions/sub-000000000000"), status: 404, code: "not_found")
        }
    }

    @Test("the server's isolation floor holds for agent runs: a version asking for wasm under a container floor is refused 403 naming manifest.isolation")
    func isolationFloor() async throws {
        try await ServedApp.with(isolationPolicy: IsolationPolicy(floor: .container)) { app in
            let created = try await app.store.createAPIKey(tenantName: "market")
            let client = try app.client(created.key)
            let bounty = try BountyServerTests.object(try await client.checked("POST", "/v1/bounties", body: try jsonBytes([
                "title": "t", "cases": [["input": "1"]], "verifier": ["lang": "python", "code": "print(1)"],
            ])).body)
            let agent = try await app.store.createAgent(AgentRecord(tenantId: created.record.tenantId, name: "wasm"))
            let digest = "sha256:" + String(repeating: "ab", count: 32)
            _ = try await app.store.putAgentVersion(AgentVersionRecord(
                digest: digest, agentId: agent.id, tenantId: created.record.tenantId,
                manifest: AgentManifest(lang: "js", entrypoint: "main.js", isolation: "wasm"), files: ["main.js": Array("1".utf8)], sizeBytes: 1,
                status: .accepted, findings: []))
            let reply = try await client.send("POST", "/v1/bounties/\(try #require(bounty["id"] as? String))/submissions",
                                              body: try jsonBytes(["agent_version": digest]))
            #expect(try ProblemBody.of(reply, status: 403, code: "forbidden").field == "manifest.isolation")
            #expect(try await app.store.submissions(tenantId: created.record.tenantId, bountyId: try #require(bounty["id"] as? String)).isEmpty,
                    "nothing is stored")
        }
    }
}
