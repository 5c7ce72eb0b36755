import Crypto
import Foundation
import SandboxCommands
import SandboxCore
import SandboxLinux
import SandboxStore
import SandboxTestSupport
import Testing

/// Replay records (issue 21): every queued run records what it ran on and the digests of its
/// output (`GET /v1/runs/{id}/record`), and `POST /v1/runs/{id}/replay` / `sandboxer replay` run
/// it again from that record and say whether the output matched and what changed.
@Suite("Replay records and replays", .serialized, .realSandboxes, .requires("requires the sandboxer executable", CLIBinary.missing))
struct RunReplayTests {
    typealias JSON = [String: Any]

    static func object(_ bytes: [UInt8]) throws -> JSON {
        try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? JSON, "not a JSON object: \(bytes.text)")
    }

    static func sha256(_ text: String) -> String {
        "sha256:" + SHA256.hash(data: Array(text.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    static func submit(_ client: APIClient, _ body: JSON) async throws -> String {
        let reply = try await client.checked("POST", "/v1/runs", body: try jsonBytes(body))
        return try #require(try object(reply.body)["id"] as? String)
    }

    /// Polls the run until it is final (at most a minute: a debug build on a loaded machine).
    static func final(_ client: APIClient, _ id: String) async throws -> JSON {
        for _ in 0..<600 {
            let run = try object(try await client.checked("GET", "/v1/runs/\(id)").body)
            if let state = run["state"] as? String, !["queued", "running"].contains(state) { return run }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestFailure("run \(id) did not end within a minute")
    }

    static func record(_ client: APIClient, _ id: String) async throws -> (JSON, String) {
        let body = try await client.checked("GET", "/v1/runs/\(id)/record").body
        return (try object(body), body.text)
    }

    /// `sandboxer replay ARGS --server URL --api-key KEY`.
    static func cli(_ args: [String], _ app: ServedApp, key: String) async throws -> (status: Termination, out: String, err: String) {
        let bin = try #require(CLIBinary.path)
        return try await ChildProcess.run([bin, "replay", "--server", app.url, "--api-key", key] + args,
                                          environment: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "SANDBOXER_CONFIG="])
    }

    @Test("a deterministic run in the container lane: its record names the template digest, the runtime's version, the digests and the env names but no env value; its replay (API and CLI) matches byte for byte with no changes; another tenant gets 404; run.replay is in the trail")
    func deterministicReplayMatches() async throws {
        try await ServedApp.with { app in
            let key = try await app.key("acme")
            let client = try app.client(key)
            let code = "import sys\nnums = sorted(int(x) for x in sys.stdin.read().split())\nprint(' '.join(map(str, nums)))\n"
            let secret = "sk-live-7f3a9c1e5b2d4e6f"
            let id = try await Self.submit(client, [
                "lang": "python", "code": code, "stdin": "3 1 2", "env": ["API_TOKEN": secret, "MODE": "fast"], "labels": ["suite": "replay"]])
            let run = try await Self.final(client, id)
            #expect(run["state"] as? String == "succeeded", "\(run)")
            let stdout = try #require((run["result"] as? JSON)?["stdout"] as? String)
            #expect(stdout == "1 2 3\n")
            #expect(run["replay_of"] == nil, "an ordinary run has no replay fields: \(run)")

            let (record, recordText) = try await Self.record(client, id)
            #expect(record["run_id"] as? String == id && record["isolation"] as? String == "container" && record["state"] as? String == "succeeded")
            #expect(record["agent_digest"] is NSNull)
            let template = try #require(record["template"] as? JSON)
            #expect(template["name"] as? String == "debian" && (template["digest"] as? String)?.hasPrefix("sha256:") == true && template["digest_note"] is NSNull, "\(template)")
            #expect((template["digest"] as? String) == (run["result"] as? JSON)?["template_digest"] as? String)
            let engines = try #require(record["engines"] as? JSON)
            #expect(["crun", "runc"].contains(engines["runtime"] as? String ?? "") && (engines["runtime_version"] as? String)?.first?.isNumber == true, "\(engines)")
            #expect(engines["wasmkit"] is NSNull && engines["sandboxer"] as? String == SandboxerVersion.current, "\(engines)")
            let output = try #require(record["output"] as? JSON)
            #expect(output["stdout_digest"] as? String == Self.sha256(stdout) && output["stdout_bytes"] as? Int == stdout.utf8.count, "\(output)")
            #expect(output["stderr_digest"] as? String == Self.sha256(""))
            #expect(record["input_digest"] as? String == Self.sha256("3 1 2") && record["code_digest"] as? String == Self.sha256(code))
            #expect(record["files_digest"] is NSNull && record["outcome"] as? String == "succeeded" && record["exit_code"] as? Int == 0)
            #expect(record["argv"] as? [String] == ["python3", "-u", "/code/main.py"] && record["cwd"] as? String == "/workspace")
            #expect(record["env_names"] as? [String] == ["API_TOKEN", "MODE"], "\(record["env_names"] ?? "none")")
            #expect(!recordText.contains(secret), "the record shows an env value: \(recordText)")
            let limits = try #require((record["profile"] as? JSON)?["resources"] as? JSON, "the profile as applied: \(record["profile"] ?? "none")")
            #expect(limits["timeout"] as? String == "30s" && limits["memory"] as? String == "512M", "every limit: \(limits)")
            #expect((record["usage"] as? JSON)?["wall_ms"] != nil && (record["timings"] as? JSON)?["run_ms"] != nil)
            #expect((record["attempts"] as? [JSON])?.count == 1)

            // Another tenant sees neither the record nor can replay it.
            let other = try app.client(try await app.key("globex"))
            _ = try ProblemBody.of(try await other.send("GET", "/v1/runs/\(id)/record"), status: 404, code: "not_found")
            _ = try ProblemBody.of(try await other.send("POST", "/v1/runs/\(id)/replay"), status: 404, code: "not_found")

            let posted = try await client.send("POST", "/v1/runs/\(id)/replay")
            #expect(posted.status == 202, "\(posted.body.text)")
            let queued = try Self.object(posted.body)
            let replayId = try #require(queued["id"] as? String)
            #expect(replayId != id && queued["replay_of"] as? String == id)
            #expect(queued["labels"] as? [String: String] == ["suite": "replay", "replay_of": id])
            let replay = try await Self.final(client, replayId)
            #expect(replay["state"] as? String == "succeeded" && replay["replay_of"] as? String == id)
            #expect((replay["result"] as? JSON)?["stdout"] as? String == stdout)
            #expect(replay["output_matches"] as? Bool == true, "\(replay)")
            #expect((replay["changes"] as? [Any])?.isEmpty == true, "\(replay["changes"] ?? "none")")
            let (replayRecord, _) = try await Self.record(client, replayId)
            #expect(replayRecord["replay_of"] as? String == id && replayRecord["output_matches"] as? Bool == true)

            // An Idempotency-Key makes a retried POST return the first replay.
            let once = try await client.send("POST", "/v1/runs/\(id)/replay", headers: ["Idempotency-Key": "replay-once"])
            let again = try await client.send("POST", "/v1/runs/\(id)/replay", headers: ["Idempotency-Key": "replay-once"])
            #expect(once.status == 202 && again.status == 200, "\(once.status) \(again.status)")
            let onceId = try Self.object(once.body)["id"] as? String
            let againId = try Self.object(again.body)["id"] as? String
            #expect(onceId != nil && onceId == againId && onceId != replayId)
            _ = try await Self.final(client, try #require(onceId))

            // The CLI: follows a new replay to its end, prints the comparison, exits 0.
            let cli = try await Self.cli([id], app, key: key)
            #expect(cli.status == .exited(0), "\(cli)")
            #expect(cli.out.contains("output matches: yes") && cli.out.contains("changes: none") && cli.out.contains(Self.sha256(stdout)), "\(cli.out)")
            let json = try await Self.cli([id, "--json"], app, key: key)
            #expect(json.status == .exited(0), "\(json)")
            let both = try Self.object(Array(json.out.utf8))
            #expect((both["original"] as? JSON)?["run_id"] as? String == id && (both["replay"] as? JSON)?["replay_of"] as? String == id, "\(json.out)")

            var trail = ""
            for _ in 0..<100 {  // the tenant trail is written by a background recorder
                trail = try await client.checked("GET", "/v1/audit").body.text
                if trail.contains("\"correlation\":\"\(replayId)\"") { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(trail.contains("\"kind\":\"run.replay\"") && trail.contains("\"correlation\":\"\(replayId)\""), "\(trail)")
        }
    }

    @Test("a Python run printing random bytes in the container lane: its record names the template digest and the runtime's version; its replay does not match (CLI exit 1); a running run cannot be replayed (409)")
    func randomOutputDoesNotMatch() async throws {
        try await ServedApp.with { app in
            let key = try await app.key("acme")
            let client = try app.client(key)
            let id = try await Self.submit(client, ["lang": "python", "code": "import os; print(os.urandom(16).hex())"])
            let run = try await Self.final(client, id)
            #expect(run["state"] as? String == "succeeded", "\(run)")
            let (record, _) = try await Self.record(client, id)
            let template = try #require(record["template"] as? JSON)
            #expect(template["name"] as? String == "debian" && (template["digest"] as? String)?.hasPrefix("sha256:") == true, "\(template)")
            let engines = try #require(record["engines"] as? JSON)
            #expect(["crun", "runc"].contains(engines["runtime"] as? String ?? "") && (engines["runtime_version"] as? String)?.first?.isNumber == true, "\(engines)")
            #expect(engines["wasmkit"] is NSNull)

            let cli = try await Self.cli([id], app, key: key)
            #expect(cli.status == .exited(1), "\(cli)")
            #expect(cli.out.contains("output matches: no") && cli.out.contains("changes: none"), "\(cli.out)")
            let replays = try Self.object(try await client.checked("GET", "/v1/runs?label=replay_of%3D\(id)").body)["items"] as? [JSON]
            let replay = try #require(replays?.first)
            #expect(replay["output_matches"] as? Bool == false && (replay["changes"] as? [Any])?.isEmpty == true, "\(replay)")

            let long = try await Self.submit(client, ["cmd": ["sleep", "30"]])
            for _ in 0..<600 {
                if try Self.object(try await client.checked("GET", "/v1/runs/\(long)").body)["state"] as? String != "queued" { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            let refused = try ProblemBody.of(try await client.send("POST", "/v1/runs/\(long)/replay"), status: 409, code: "invalid_state")
            #expect(refused.detail.contains("only a finished run can be replayed"), "\(refused.detail)")
            _ = try await client.checked("POST", "/v1/runs/\(long)/cancel")
            _ = try await Self.final(client, long)
        }
    }

    @Test("a replay counts against the tenant's max_queued like a submit: with the workers busy and the queue at its quota, a replay is a 429 and queues nothing")
    func replayCountsAgainstTheQueueQuota() async throws {
        try await ServedApp.with(defaultQuota: TenantQuota(maxQueued: 1)) { app in
            let client = try app.client(try await app.key("acme"))
            let done = try await Self.submit(client, ["cmd": ["echo", "done"]])
            _ = try await Self.final(client, done)
            // The served app runs two runs at once: two sleeps hold the workers, a third waits queued.
            var sleeps: [String] = []
            for _ in 0..<2 {
                let id = try await Self.submit(client, ["cmd": ["sleep", "30"]])
                sleeps.append(id)
                for _ in 0..<600 {
                    if try Self.object(try await client.checked("GET", "/v1/runs/\(id)").body)["state"] as? String == "running" { break }
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            sleeps.append(try await Self.submit(client, ["cmd": ["sleep", "30"]]))
            let refused = try ProblemBody.of(try await client.send("POST", "/v1/runs/\(done)/replay"), status: 429, code: "quota_exceeded")
            #expect(refused.detail.contains("max_queued"), "\(refused.detail)")
            let listed = try Self.object(try await client.checked("GET", "/v1/runs?label=replay_of%3D\(done)").body)["items"] as? [Any]
            #expect(listed?.isEmpty == true, "a refused replay queued nothing: \(listed ?? [])")
            for id in sleeps { _ = try await client.checked("POST", "/v1/runs/\(id)/cancel") }
            for id in sleeps { _ = try await Self.final(client, id) }
        }
    }

    @Test("a replay of a run whose template was rebuilt with a change since reports the template digest change (and the output that changed with it)", .requires("requires mmdebstrap and skopeo (make test installs them)") {
        ["/usr/bin/mmdebstrap", "/usr/bin/skopeo"].allSatisfy { FileManager.default.isExecutableFile(atPath: $0) } ? nil : "mmdebstrap or skopeo is missing"
    })
    func rebuiltTemplateIsAChange() async throws {
        let data = NSTemporaryDirectory() + "sandboxer-replay-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: data) }
        let name = "replay-\(UUID().uuidString.prefix(6).lowercased())"
        func build(_ text: String) async throws -> String {
            let context = try TemplateBuildTests.context(["Dockerfile": "FROM debian\nRUN echo \(text) > /version.txt\n"])
            defer { try? FileManager.default.removeItem(atPath: context) }
            let built = try await TemplateBuildTests.build(name, context, data: data)
            try #require(built.status == 0, "\(built.out) \(built.err)")
            return built.out
        }
        _ = try await build("one")
        let (key, original) = try await ServedApp.with(dataDirectory: data) { app in
            let key = try await app.key("acme")
            let client = try app.client(key)
            let id = try await Self.submit(client, ["profile": ["template": name], "cmd": ["cat", "/version.txt"]])
            let run = try await Self.final(client, id)
            #expect((run["result"] as? JSON)?["stdout"] as? String == "one\n", "\(run)")
            return (key, id)
        }
        _ = try await build("two")
        try await ServedApp.with(dataDirectory: data) { app in
            let client = try app.client(key)
            let (before, _) = try await Self.record(client, original)
            let oldDigest = try #require((before["template"] as? JSON)?["digest"] as? String)
            let replayId = try #require(try Self.object(try await client.checked("POST", "/v1/runs/\(original)/replay").body)["id"] as? String)
            let replay = try await Self.final(client, replayId)
            #expect((replay["result"] as? JSON)?["stdout"] as? String == "two\n", "\(replay)")
            #expect(replay["output_matches"] as? Bool == false)
            let changes = try #require(replay["changes"] as? [JSON], "\(replay)")
            let (after, _) = try await Self.record(client, replayId)
            let newDigest = try #require((after["template"] as? JSON)?["digest"] as? String)
            #expect(newDigest != oldDigest)
            #expect(changes.count == 1 && changes.first?["field"] as? String == "template_digest", "\(changes)")
            #expect(changes.first?["original"] as? String == oldDigest && changes.first?["replay"] as? String == newDigest, "\(changes)")
            // The CLI says the same.
            let cli = try await Self.cli([original], app, key: key)
            #expect(cli.status == .exited(1) && cli.out.contains("output matches: no"), "\(cli)")
            #expect(cli.out.contains("changes:\n  template_digest: \(oldDigest) → \(newDigest)"), "\(cli.out)")
        }
    }
}
