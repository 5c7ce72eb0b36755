import Foundation
import SandboxCore
import SandboxManager
import SandboxTestSupport
import Testing

/// `GET /v1/usage` against real sandboxes: CPU burnt in a sandbox is metered from its cgroup,
/// totals survive a restart of the server without being counted twice, each tenant sees only
/// its own, and bad parameters are named.
@Suite("Usage (metering) over HTTP", .serialized)
struct UsageTests {
    /// The body of `GET /v1/usage`, decoded.
    struct Report: Decodable {
        struct Totals: Decodable {
            var key: String?
            var sandbox_seconds: Double
            var cpu_seconds: Double
            var memory_gib_seconds: Double
            var egress_bytes_in: Int64
            var egress_bytes_out: Int64
            var execs: Int64
            var runs: [String: Int64]
        }
        var since: String
        var until: String
        var group_by: String
        var groups: [Totals]
        var total: Totals
    }

    static func usage(_ app: ServedApp, _ key: String, _ query: String = "") async throws -> Report {
        try JSONDecoder().decode(Report.self, from: Data(try await app.client(key).checked("GET", "/v1/usage" + query).body))
    }

    /// A shell loop that keeps one core busy for a while (hundreds of ms of CPU).
    static let burn = ["sh", "-c", "i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done; echo done"]

    @Test("CPU burnt in a sandbox shows as cpu_seconds; a restart keeps the totals and does not count them twice; group_by day/sandbox/run",
          .realSandboxes)
    func burnAndRestart() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sbx-usage-\(UUID().uuidString.prefix(8))").path
        defer {
            try? FileManager.default.removeItem(atPath: dir)
            try? FileManager.default.removeItem(atPath: SandboxManager.Configuration.stateDirectory(forData: dir))
        }
        let (key, other, id, before) = try await ServedApp.with(dataDirectory: dir) { app in
            let (key, other) = (try await app.key("acme"), try await app.key("globex"))
            let created = try await app.client(key).checked("POST", "/v1/sandboxes", body: try jsonBytes(["ttl": "10m"]))
            let id = try #require((try JSONSerialization.jsonObject(with: Data(created.body)) as? [String: Any])?["id"] as? String)
            let exec = try await app.client(key).checked("POST", "/v1/sandboxes/\(id)/exec", body: try jsonBytes(["cmd": Self.burn]))
            #expect(exec.body.text.contains("done"))

            let report = try await Self.usage(app, key)
            #expect(report.group_by == "day" && report.groups.count == 1)
            #expect(report.total.cpu_seconds > 0.05, "the loop's CPU time: \(report.total.cpu_seconds)")
            #expect(report.total.sandbox_seconds > 0 && report.total.memory_gib_seconds > 0 && report.total.execs == 1)
            let bySandbox = try await Self.usage(app, key, "?group_by=sandbox")
            #expect(bySandbox.groups.map(\.key) == [id] && bySandbox.groups.first?.cpu_seconds == bySandbox.total.cpu_seconds)
            #expect(try await Self.usage(app, key, "?group_by=run").groups.isEmpty, "no queued runs")
            // Another tenant: nothing of acme's.
            let theirs = try await Self.usage(app, other, "?group_by=sandbox")
            #expect(theirs.groups.isEmpty && theirs.total.cpu_seconds == 0 && theirs.total.execs == 0)
            return (key, other, id, report.total)
        }

        // The same data directory, a new server process: the sandbox is adopted, its usage so far
        // is in the store, and the meter starts from where the sandbox stands now.
        try await ServedApp.with(dataDirectory: dir) { app in
            let after = try await Self.usage(app, key)
            #expect(after.total.cpu_seconds >= before.cpu_seconds)
            #expect(after.total.cpu_seconds < before.cpu_seconds * 1.5, "counted once: \(before.cpu_seconds) then \(after.total.cpu_seconds)")
            #expect(after.total.execs == 1 && after.total.sandbox_seconds >= before.sandbox_seconds)
            _ = try await app.client(key).checked("DELETE", "/v1/sandboxes/\(id)")
            let ended = try await Self.usage(app, key, "?group_by=sandbox")
            #expect(ended.groups.map(\.key) == [id] && ended.total.cpu_seconds >= after.total.cpu_seconds)
            #expect(try await Self.usage(app, other).total.sandbox_seconds == 0)
        }
    }

    @Test("bad parameters are a 400 problem naming the parameter; since/until select the window")
    func parameters() async throws {
        try await ServedApp.with { app in
            let key = try await app.key("acme")
            let cases = [("group_by=week", "group_by"), ("since=yesterday", "since"), ("until=2026-13-01", "until"),
                         ("since=2026-12-06&until=2026-12-05", "since"), ("tenant=globex", "tenant")]
            for (query, field) in cases {
                let reply = try await app.client(key).send("GET", "/v1/usage?" + query)
                #expect(try ProblemBody.of(reply, status: 400, code: "invalid_request").field == field, "\(query)")
            }
            let window = try await Self.usage(app, key, "?since=2026-12-01&until=2026-12-02T12:00:00Z&group_by=run")
            #expect(window.since == "2026-12-01T00:00:00.000Z" && window.until == "2026-12-02T12:00:00.000Z" && window.group_by == "run")
            #expect(window.groups.isEmpty && window.total.runs.isEmpty)
            #expect(try await app.client(nil).send("GET", "/v1/usage").status == 401)
        }
    }
}
