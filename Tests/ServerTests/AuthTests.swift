import Foundation
import SandboxCommands
import SandboxStore
import SandboxLinux
import Testing

/// Bearer auth on /v1 and /metrics; probes open.
@Suite struct AuthTests {
    @Test func probesAreOpen() async throws {
        try await ServedApp.with { app in
            let client = try app.client(nil)
            let health = try await client.send("GET", "/healthz")
            #expect(health.status == 200)
            let ready = try await client.send("GET", "/readyz")
            #expect(ready.status == 200, "\(ready.body.text)")
        }
    }

    @Test func missingKeyIs401Problem() async throws {
        try await ServedApp.with { app in
            let reply = try await app.client(nil).send("GET", "/v1/sandboxes")
            let p = try ProblemBody.of(reply, status: 401, code: "unauthorized")
            #expect(p.detail.contains("Authorization"))
            #expect(reply.headers["www-authenticate"] == "Bearer")
            _ = try ProblemBody.of(try await app.client(nil).send("GET", "/metrics"), status: 401, code: "unauthorized")
            // Unknown routes under /v1 are behind auth too: no route probing without a key.
            _ = try ProblemBody.of(try await app.client(nil).send("GET", "/v1/nothing"), status: 401, code: "unauthorized")
        }
    }

    @Test func badAndRevokedKeysAre401() async throws {
        try await ServedApp.with { app in
            _ = try ProblemBody.of(try await app.client("not-a-key").send("GET", "/v1/sandboxes"), status: 401, code: "unauthorized")
            let (key, record) = try await app.store.createAPIKey(tenantName: "acme")
            let ok = try await app.client(key).send("GET", "/v1/sandboxes")
            #expect(ok.status == 200, "\(ok.body.text)")
            try await app.store.revokeAPIKey(id: record.id)
            _ = try ProblemBody.of(try await app.client(key).send("GET", "/v1/sandboxes"), status: 401, code: "unauthorized")
        }
    }

    @Test func metricsWithKeyIsPrometheusText() async throws {
        try await ServedApp.with(configuration: .init(port: 0, metricsTenants: ["acme"])) { app in
            let reply = try await app.client(try await app.key("acme")).send("GET", "/metrics")
            #expect(reply.status == 200)
            #expect(reply.headers["content-type"]?.hasPrefix("text/plain") == true)
            #expect(reply.body.text.contains("sandboxer_sandboxes{state=\"running\"}"))
            #expect(reply.body.text.contains("sandboxer_pool_size"))
        }
    }

    /// Issue 18, item 5: the blocking pool is sized and observable.
    @Test func metricsShowTheBlockingPool() async throws {
        try await ServedApp.with(configuration: .init(port: 0, metricsTenants: ["acme"])) { app in
            let pool = BlockingPool.shared
            _ = await pool.run { 1 }
            let text = try await app.client(try await app.key("acme")).send("GET", "/metrics").body.text
            let threads = pool.snapshot().threads
            #expect(text.contains("sandboxer_blocking_pool_threads \(threads)"), "\(text)")
            #expect(text.contains("sandboxer_blocking_pool_active "))
            #expect(text.contains("sandboxer_blocking_pool_queued "))
            #expect(text.contains("sandboxer_dedicated_threads "))
            #expect(text.contains("sandboxer_blocking_misplaced_total "))
            let calls = text.split(separator: "\n").first { $0.hasPrefix("sandboxer_blocking_pool_calls_total ") }
            #expect((calls?.split(separator: " ").last).flatMap { Double($0) }.map { $0 >= 1 } == true, "\(calls ?? "no calls line")")
        }
    }

    /// The server-wide counts are the operator's (issue 17, low item): any other tenant's key is refused.
    @Test func metricsAreOnlyForTheOperatorsTenants() async throws {
        try await ServedApp.with(configuration: .init(port: 0, metricsTenants: ["ops"])) { app in
            let other = try await app.client(try await app.key("acme")).send("GET", "/metrics")
            _ = try ProblemBody.of(other, status: 403, code: "forbidden")
            #expect(!other.body.text.contains("sandboxer_sandboxes"))
            #expect(try await app.client(try await app.key("ops")).send("GET", "/metrics").status == 200)
        }
    }
}
