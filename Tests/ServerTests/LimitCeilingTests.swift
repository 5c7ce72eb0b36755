import Foundation
import SandboxCore
import SandboxServer
import Testing

/// Tenant limits have ceilings (issue 17, item 7): an inline profile asking for more than the
/// operator allows (1 GiB of output per exec took the server to 3 GB) is refused naming the field
/// and the ceiling, on creates and queued runs; a tenant's memory quota never exceeds the
/// server's tenant ceiling, whatever the stored quota says (64 GiB by default on any host).
@Suite struct LimitCeilingTests {
    static var ceilings: LimitCeilings {
        var c = LimitCeilings.derived(memory: 2 << 30, cores: 2)
        c.outputBytes = 16 << 20
        c.tenantMemoryBytes = 1 << 30
        return c
    }

    @Test func inlineLimitsOverACeilingAreRefusedNamingIt() async throws {
        try await ServedApp.with(ceilings: Self.ceilings) { app in
            let client = try app.client(try await app.key("acme"))
            let cases: [(String, String, Int64)] = [
                ("output", "1G", 16 << 20), ("memory", "2G", 1 << 30), ("cpus", "64", 2), ("pids", "100000", 16_384),
                ("workspace", "2G", 1 << 30), ("timeout", "48h", 86_400_000),
            ]
            for (name, value, ceiling) in cases {
                for path in ["/v1/sandboxes", "/v1/runs"] {
                    var body: [String: Any] = ["profile": ["resources": [name: value]]]
                    if path == "/v1/runs" { body["cmd"] = ["true"] }
                    let reply = try await client.send("POST", path, body: try jsonBytes(body))
                    let problem = try ProblemBody.of(reply, status: 422, code: "limit_exceeded")
                    #expect(problem.name == "resources.\(name)" && problem.limit == ceiling, "\(path) \(name): \(problem.detail)")
                    #expect(problem.field == "profile.resources.\(name)")
                    #expect(problem.detail.contains("ceiling"))
                }
            }
            // At the ceiling is fine (a WASM sandbox: no root needed).
            let ok = try await client.send("POST", "/v1/sandboxes", body: try jsonBytes(["isolation": "wasm", "profile": ["resources": ["output": "16M"]]]))
            #expect(ok.status == 201, "\(ok.body.text)")
        }
    }

    @Test func theTenantMemoryQuotaIsCappedByTheServerCeiling() async throws {
        try await ServedApp.with(ceilings: Self.ceilings) { app in
            let client = try app.client(try await app.key("acme"))
            // Stored quota: 64 GiB (the default); server ceiling: 1 GiB. Two 512 MiB sandboxes fit, a third does not.
            let body = try jsonBytes(["isolation": "wasm", "ttl": "2m", "profile": ["resources": ["memory": "512M"]]])
            for _ in 0..<2 {
                let created = try await client.send("POST", "/v1/sandboxes", body: body)
                #expect(created.status == 201, "\(created.body.text)")
            }
            let third = try await client.send("POST", "/v1/sandboxes", body: body)
            let problem = try ProblemBody.of(third, status: 429, code: "quota_exceeded")
            #expect(problem.detail.contains("1 GiB"), "\(problem.detail)")
        }
    }
}
