import Foundation
import NIOHTTP1
import SandboxCore
import SandboxLinux
import SandboxManager

#if canImport(Glibc)
import Glibc
#endif

/// `sandboxer bench --suite bounty`: the cost of scoring. One submission of N cases × a trivial
/// agent (`sh`: `cat`) and a trivial verifier (`sh`: prints score 1) — N agent runs and N verifier
/// runs — against 2N and N plain runs of the same program through the same queue, in one run, on
/// a `sandboxer serve` of this binary (a child process on a free loopback port with a throw-away
/// data directory, so the server is wired exactly as in production).
///
/// Wall time: from the first request of a part to the end of its last run (plain runs: the
/// latest `ended_at`; the submission: the moment it is seen `scored`, polled every 20 ms).
struct BountyBench {
    /// Cases of the submission (plain parts: 2N and N runs).
    let cases: Int
    /// `serve --workers`.
    let workers: Int

    /// One part's result.
    struct Part {
        var name: String
        var runs: Int
        var seconds: Double
        var runsPerMinute: Double { Double(runs) / seconds * 60 }
    }

    static let agent = "cat\n"
    static let verifier = #"cat >/dev/null; echo '{"score": 1, "message": "ok"}'"#

    func run() async throws {
        guard getuid() == 0 else { throw SandboxError(.hostUnsupported, "bench --suite bounty needs root (container sandboxes)") }
        try await BenchDataDirectory.with("bounty") { data in
            let server = try await BenchServer.start(data: data, workers: workers)
            do {
                try await measure(server)
                await server.stop()
            } catch {
                await server.stop()
                throw error
            }
        }
    }

    func measure(_ server: BenchServer) async throws {
        print(APIBench.hostLine(iterations: cases).replacingOccurrences(
            of: "API over loopback HTTP/1.1 keep-alive", with: "bounty scoring vs plain runs, `serve --workers \(workers)`"))
        try await BenchConnection.with(port: server.port, apiKey: server.key) { c in
            // Warm-up: a few plain runs (the first sandboxes of a server pay one-time costs).
            let warm = try await plain(&c, count: workers, label: "warmup")
            print(String(format: "warm-up: %d plain runs in %.2f s", warm.runs, warm.seconds))
            let bountyId = try await makeBounty(&c)
            let digest = try await makeAgent(&c)
            var parts: [Part] = []
            parts.append(try await plain(&c, count: 2 * cases, label: "plain2n"))
            parts.append(try await plain(&c, count: cases, label: "plainn"))
            parts.append(try await submission(&c, bountyId: bountyId, digest: digest))
            let (double, single, scored) = (parts[0], parts[1], parts[2])
            print("\n| part (trivial `sh` programs, profile bounty) | runs | wall s | runs/min | wall × \(2 * cases) plain runs | wall × \(cases) plain runs |")
            print("|---|---:|---:|---:|---:|---:|")
            for p in parts {
                print(benchRow([p.name, String(p.runs), String(format: "%.1f", p.seconds), String(format: "%.0f", p.runsPerMinute),
                                ratio(p.seconds / double.seconds), ratio(p.seconds / single.seconds)]))
            }
            print(String(format: "\nscoring overhead: the submission's %d runs took %.2f× the wall time of %d plain runs (%.0f vs %.0f runs/min); %.1f cases/min",
                         scored.runs, scored.seconds / double.seconds, double.runs, scored.runsPerMinute, double.runsPerMinute,
                         Double(cases) / scored.seconds * 60))
        }
    }

    /// `count` plain runs of `sh /code/main.sh` (`cat`) with the bounty profile, submitted at
    /// once; waits for all to end.
    func plain(_ c: inout BenchConnection, count: Int, label: String) async throws -> Part {
        let body = try Self.json(["code": Self.agent, "lang": "sh", "profile": "bounty", "stdin": "3 1 2\n", "max_attempts": 1,
                                  "labels": ["bench": label]])
        let start = Date()
        var ids: [String] = []
        for _ in 0..<count { ids.append(try Self.string(try await c.expect(202, .POST, "/v1/runs", json: body), "id")) }
        var end = start
        var pending = Set(ids)
        let deadline = Date().addingTimeInterval(600)
        while !pending.isEmpty {
            guard Date() < deadline else { throw SandboxError(.system, "\(pending.count) plain runs did not end within 10 minutes") }
            let page = try Self.object(try await c.expect(200, .GET, "/v1/runs?label=bench=\(label)&limit=1000"))
            for item in page["items"] as? [[String: Any]] ?? [] {
                guard let id = item["id"] as? String, pending.contains(id), let state = item["state"] as? String,
                      !["queued", "running"].contains(state) else { continue }
                guard state == "succeeded" else { throw SandboxError(.system, "plain run \(id) ended \(state): \(item["reason"] ?? "")") }
                pending.remove(id)
                if let ended = (item["ended_at"] as? String).flatMap(Self.date) { end = max(end, ended) }
            }
            if !pending.isEmpty { try await Task.sleep(for: .milliseconds(100)) }
        }
        return Part(name: "\(count) plain runs", runs: count, seconds: end.timeIntervalSince(start))
    }

    /// One submission of the agent to the bounty; waits until it is scored.
    func submission(_ c: inout BenchConnection, bountyId: String, digest: String) async throws -> Part {
        let start = Date()
        let sub = try Self.string(try await c.expect(202, .POST, "/v1/bounties/\(bountyId)/submissions",
                                                     json: try Self.json(["agent_version": digest])), "id")
        let deadline = Date().addingTimeInterval(900)
        while true {
            let view = try Self.object(try await c.expect(200, .GET, "/v1/submissions/\(sub)"))
            let state = view["state"] as? String ?? "?"
            if state == "scored" || state == "failed" {
                let end = Date()
                guard state == "scored", (view["score"] as? Double) == 1 else {
                    throw SandboxError(.system, "submission \(sub) ended \(state) with score \(view["score"] ?? "none"): \(view["reason"] ?? "")")
                }
                return Part(name: "1 submission, \(cases) cases (agent + verifier runs)", runs: 2 * cases, seconds: end.timeIntervalSince(start))
            }
            guard Date() < deadline else { throw SandboxError(.system, "submission \(sub) still \(state) after 15 minutes") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    func makeBounty(_ c: inout BenchConnection) async throws -> String {
        let cases = (0..<cases).map { i in ["input": "\(i) 3 1 2\n", "hidden": "expected \(i)"] }
        let body = try Self.json(["title": "bench", "profile": "bounty", "cases": cases, "verifier": ["lang": "sh", "code": Self.verifier]])
        return try Self.string(try await c.expect(201, .POST, "/v1/bounties", json: body), "id")
    }

    func makeAgent(_ c: inout BenchConnection) async throws -> String {
        let agent = try Self.string(try await c.expect(201, .POST, "/v1/agents", json: #"{"name":"bench-cat"}"#), "id")
        let version = try Self.object(try await c.expect(201, .POST, "/v1/agents/\(agent)/versions", json: try Self.json([
            "files": ["main.sh": Self.agent], "manifest": ["lang": "sh", "entrypoint": "main.sh", "isolation": "container"],
        ])))
        guard version["status"] as? String == "accepted", let digest = version["digest"] as? String else {
            throw SandboxError(.system, "the bench agent was not accepted: \(version)")
        }
        return digest
    }

    static func json(_ value: Any) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: value), as: UTF8.self)
    }

    static func object(_ body: [UInt8]) throws -> [String: Any] {
        guard let o = try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
            throw SandboxError(.system, "not a JSON object: \(String(decoding: body.prefix(200), as: UTF8.self))")
        }
        return o
    }

    static func string(_ body: [UInt8], _ key: String) throws -> String {
        guard let s = try object(body)[key] as? String else { throw SandboxError(.system, "no '\(key)' in \(String(decoding: body.prefix(200), as: UTF8.self))") }
        return s
    }

    static func date(_ text: String) -> Date? {
        (try? Date(text, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true))) ?? (try? Date(text, strategy: .iso8601))
    }
}
