import Foundation
import SandboxCommands
import SandboxCore
import SandboxManager
import SandboxStore
import SandboxTestSupport
import Testing

/// The operator's tenant routes (issue 18, item 2): keys of `--operator-tenant` tenants list tenants
/// and set their quotas; every tenant reads its own quotas in force; the server's defaults apply
/// where the operator set nothing, and a change applies at once.
@Suite("Tenants and quotas over the API")
struct TenantRouteTests {
    struct View: Decodable {
        var name: String
        var quota: TenantQuota
        var overrides: QuotaOverrides
    }
    struct List: Decodable { var tenants: [View] }

    static let defaults = TenantQuota(maxSandboxes: 20, execsPerMinute: 600, maxMemoryBytes: 8 << 30, maxQueued: 40)

    @Test("only operator keys list tenants and change quotas; each tenant reads its own quotas in force")
    func operatorRoutes() async throws {
        try await ServedApp.with(configuration: .init(port: 0, operatorTenants: ["ops"]), defaultQuota: Self.defaults) { app in
            let acme = try app.client(try await app.key("acme"))
            let ops = try app.client(try await app.key("ops"))
            for (method, path) in [("GET", "/v1/tenants"), ("GET", "/v1/tenants/acme"), ("PATCH", "/v1/tenants/acme/quota")] {
                let refused = try await acme.send(method, path, body: method == "PATCH" ? try jsonBytes(["max_sandboxes": 1000]) : nil)
                let p = try ProblemBody.of(refused, status: 403, code: "forbidden")
                #expect(p.detail.contains("--operator-tenant"))
            }
            let own = try JSONDecoder().decode(View.self, from: Data(try await acme.send("GET", "/v1/quota").body))
            #expect(own.quota == Self.defaults && own.overrides == QuotaOverrides(), "the server's defaults apply where nothing is set")

            let listed = try JSONDecoder().decode(List.self, from: Data(try await ops.send("GET", "/v1/tenants").body))
            #expect(listed.tenants.map(\.name) == ["acme", "ops"])

            let patched = try await ops.send("PATCH", "/v1/tenants/acme/quota", body: try jsonBytes(["max_sandboxes": 2, "max_memory": "1G", "max_queued": 0]))
            #expect(patched.status == 200, "\(patched.body.text)")
            let view = try JSONDecoder().decode(View.self, from: Data(patched.body))
            #expect(view.overrides == QuotaOverrides(maxSandboxes: 2, maxMemoryBytes: 1 << 30, maxQueued: 0))
            #expect(view.quota == TenantQuota(maxSandboxes: 2, execsPerMinute: 600, maxMemoryBytes: 1 << 30, maxQueued: 0))
            let now = try JSONDecoder().decode(View.self, from: Data(try await acme.send("GET", "/v1/quota").body))
            #expect(now.quota == view.quota, "this server applies a change at once")

            // max_queued 0: the tenant's runs are refused at once, another tenant's are not.
            let run = try jsonBytes(["cmd": ["true"]])
            _ = try ProblemBody.of(try await acme.send("POST", "/v1/runs", body: run), status: 429, code: "quota_exceeded")
            #expect(try await ops.send("POST", "/v1/runs", body: run).status == 202)

            // null clears a quota: the default is back.
            let cleared = try await ops.send("PATCH", "/v1/tenants/acme/quota", body: Array(#"{"max_queued": null, "max_memory": null}"#.utf8))
            let back = try JSONDecoder().decode(View.self, from: Data(cleared.body))
            #expect(back.overrides == QuotaOverrides(maxSandboxes: 2) && back.quota.maxQueued == 40 && back.quota.maxMemoryBytes == 8 << 30)
        }
    }

    @Test("a bad quota change is a 400 naming the field and changes nothing; an unknown tenant is a 404")
    func badChanges() async throws {
        try await ServedApp.with(configuration: .init(port: 0, operatorTenants: ["ops"])) { app in
            _ = try await app.key("acme")
            let ops = try app.client(try await app.key("ops"))
            let cases: [(String, String)] = [
                (#"{"max_sandbox": 3}"#, "max_sandbox"),
                (#"{"max_sandboxes": "many"}"#, "max_sandboxes"),
                (#"{"max_memory": "lots"}"#, "max_memory"),
                (#"{"max_memory": "1G", "max_memory_bytes": 1073741824}"#, "max_memory"),
            ]
            for (body, field) in cases {
                let p = try ProblemBody.of(try await ops.send("PATCH", "/v1/tenants/acme/quota", body: Array(body.utf8)), status: 400, code: "invalid_request")
                #expect(p.field == field, "\(body): \(p.detail)")
            }
            let negative = try ProblemBody.of(try await ops.send("PATCH", "/v1/tenants/acme/quota", body: try jsonBytes(["max_sandboxes": -1])),
                                              status: 400, code: "invalid_request")
            #expect(negative.detail.contains("max_sandboxes"))
            #expect(try await app.store.tenant(name: "acme")?.overrides == QuotaOverrides())
            _ = try ProblemBody.of(try await ops.send("PATCH", "/v1/tenants/nobody/quota", body: try jsonBytes(["max_sandboxes": 1])), status: 404, code: "not_found")
        }
    }

    @Test("a lowered max_sandboxes refuses the next create at once (429), and raising it lets it through",
          .realSandboxes)
    func loweredQuotaApplies() async throws {
        try await ServedApp.with(configuration: .init(port: 0, operatorTenants: ["ops"])) { app in
            let acme = try app.client(try await app.key("acme"))
            let ops = try app.client(try await app.key("ops"))
            let first = try await acme.send("POST", "/v1/sandboxes", body: try jsonBytes([:]))
            #expect(first.status == 201, "\(first.body.text)")
            #expect(try await ops.send("PATCH", "/v1/tenants/acme/quota", body: try jsonBytes(["max_sandboxes": 1])).status == 200)
            let p = try ProblemBody.of(try await acme.send("POST", "/v1/sandboxes", body: try jsonBytes([:])), status: 429, code: "quota_exceeded")
            #expect(p.detail.contains("max_sandboxes"))
            #expect(try await ops.send("PATCH", "/v1/tenants/acme/quota", body: try jsonBytes(["max_sandboxes": 2])).status == 200)
            let second = try await acme.send("POST", "/v1/sandboxes", body: try jsonBytes([:]))
            #expect(second.status == 201, "\(second.body.text)")
            for reply in [first, second] {
                let id = try #require(try JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: Any])["id"] as! String
                _ = try await acme.send("DELETE", "/v1/sandboxes/\(id)")
            }
        }
    }
}

/// Queued runs count against the tenant's quotas like live sandboxes (issue 18, item 6): a run
/// whose tenant is at `max_sandboxes` waits in the queue (handed back, no attempt used) and starts
/// when a sandbox is deleted; a running attempt holds a share a create cannot take.
@Suite("Queued runs and the tenant's quotas")
struct RunQuotaTests {
    static func json(_ reply: APIClient.Reply) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: Any], "\(reply.body.text)")
    }

    @Test("a run waits while live sandboxes fill max_sandboxes, then runs; a running attempt counts like a sandbox",
          .realSandboxes)
    func runsCountAgainstTheQuota() async throws {
        try await ServedApp.with { app in
            let key = try await app.key("acme")
            let tenant = try #require(try await app.store.tenant(name: "acme"))
            try await app.store.setQuota(tenantId: tenant.id, QuotaOverrides(maxSandboxes: 1))
            let acme = try app.client(key)
            let sandbox = try Self.json(try await acme.send("POST", "/v1/sandboxes", body: try jsonBytes([:])))
            let sandboxId = try #require(sandbox["id"] as? String)

            let submitted = try Self.json(try await acme.send("POST", "/v1/runs", body: try jsonBytes(["cmd": ["echo", "ran"], "max_attempts": 1])))
            let runId = try #require(submitted["id"] as? String)
            var run: [String: Any] = [:]
            for _ in 0..<100 {  // handed back at least once: the reason says why it waits
                run = try Self.json(try await acme.send("GET", "/v1/runs/\(runId)"))
                if (run["reason"] as? String)?.contains("quota") == true { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(run["state"] as? String == "queued" && (run["reason"] as? String)?.contains("max_sandboxes") == true, "\(run)")
            #expect((run["attempts"] as? [Any])?.isEmpty ?? true, "waiting uses no attempt")

            _ = try await acme.send("DELETE", "/v1/sandboxes/\(sandboxId)")
            for _ in 0..<200 {
                run = try Self.json(try await acme.send("GET", "/v1/runs/\(runId)"))
                if run["state"] as? String == "succeeded" { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(run["state"] as? String == "succeeded", "\(run)")

            // While an attempt runs, it holds the tenant's one sandbox: a create is refused.
            let long = try Self.json(try await acme.send("POST", "/v1/runs", body: try jsonBytes(["cmd": ["sleep", "986714"]])))
            let longId = try #require(long["id"] as? String)
            try await HostHealth.waitUntil(tries: 200, every: .milliseconds(50)) { !HostHealth.processes(matching: "986714").isEmpty }
            _ = try ProblemBody.of(try await acme.send("POST", "/v1/sandboxes", body: try jsonBytes([:])), status: 429, code: "quota_exceeded")
            _ = try await acme.send("POST", "/v1/runs/\(longId)/cancel")
            for _ in 0..<200 {
                if (try Self.json(try await acme.send("GET", "/v1/runs/\(longId)")))["state"] as? String == "cancelled" { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            let after = try await acme.send("POST", "/v1/sandboxes", body: try jsonBytes([:]))
            #expect(after.status == 201, "the attempt's share is free once it ended: \(after.body.text)")
            if let id = try Self.json(after)["id"] as? String { _ = try await acme.send("DELETE", "/v1/sandboxes/\(id)") }
        }
    }
}

/// Queued runs from the warm pool (issue 18, numbers): an attempt whose profile is a pooled one,
/// exactly as configured, runs in a ready sandbox, which is destroyed after; any other profile
/// gets a one-shot sandbox.
@Suite("Queued runs from the warm pool")
struct PooledRunTests {
    @Test("a run of a pooled profile takes a ready sandbox and leaves nothing of it; an inline profile does not", .realSandboxes)
    func pooledAttempts() async throws {
        try await ServedApp.with(warmPool: ["default": 2]) { app in
            try await app.manager.start()
            var ready: [String] = []
            for _ in 0..<200 {
                ready = await app.manager.poolSandboxIds["default"] ?? []
                if ready.count == 2 { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(ready.count == 2, "the pool fills")
            let acme = try app.client(try await app.key("acme"))
            func finished(_ body: [String: Any]) async throws -> [String: Any] {
                let id = try #require(try RunQuotaTests.json(try await acme.send("POST", "/v1/runs", body: try jsonBytes(body)))["id"] as? String)
                var run: [String: Any] = [:]
                for _ in 0..<400 {
                    run = try RunQuotaTests.json(try await acme.send("GET", "/v1/runs/\(id)"))
                    if ["succeeded", "failed", "dead", "timed_out", "cancelled"].contains(run["state"] as? String ?? "") { break }
                    try await Task.sleep(for: .milliseconds(50))
                }
                return run
            }
            // A process left running in the background dies with the sandbox.
            let run = try await finished(["profile": "default", "cmd": ["sh", "-c", "echo pooled; sleep 986741 >/dev/null 2>&1 & cat /proc/self/cgroup >/dev/null"]])
            #expect(run["state"] as? String == "succeeded", "\(run)")
            #expect((run["result"] as? [String: Any])?["stdout"] as? String == "pooled\n")
            let attempt = try #require((run["attempts"] as? [[String: Any]])?.last)
            let sandboxId = try #require(attempt["sandbox_id"] as? String)
            #expect(ready.contains(sandboxId), "the attempt ran in a pooled sandbox")
            // The end is recorded without waiting for the teardown, which ends within the attempt.
            let state = SandboxManager.Configuration.stateDirectory(forData: app.dataDirectory)
            try await HostHealth.waitUntil(tries: 200, every: .milliseconds(50)) {
                HostHealth.leftovers(of: sandboxId, stateDirectory: state).isEmpty && HostHealth.processes(matching: "986741").isEmpty
            }
            #expect(HostHealth.leftovers(of: sandboxId, stateDirectory: state).isEmpty, "the pooled sandbox is destroyed after its one exec")
            #expect(HostHealth.processes(matching: "986741").isEmpty, "its background process is killed with it")

            let pooledNow = Set(await app.manager.poolSandboxIds["default"] ?? [])
            let inline = try await finished(["profile": ["isolation": "container"], "cmd": ["echo", "fresh"]])
            #expect(inline["state"] as? String == "succeeded", "\(inline)")
            let inlineId = try #require((inline["attempts"] as? [[String: Any]])?.last?["sandbox_id"] as? String)
            #expect(!pooledNow.contains(inlineId) && !ready.contains(inlineId), "an inline profile gets a one-shot sandbox")
        }
    }
}
