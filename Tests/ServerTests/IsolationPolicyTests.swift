import Foundation
import SandboxCore
import SandboxServer
import Testing

/// Settings that weaken isolation are the operator's (issue 17, item 6): a tenant's inline profile
/// that switches off the user namespace (the agent would run as host root with KILL/SETUID/SETGID,
/// the code as a real host account), runs as group 0, picks the OCI runtime or an isolation below the
/// operator's floor is refused with 403 naming the field — on sandbox creates and queued runs —
/// unless the operator trusts that tenant.
@Suite struct IsolationPolicyTests {
    static var weakening: [(field: String, profile: [String: Any])] { [
        ("profile.user.namespace", ["user": ["namespace": false]]),
        ("profile.user.namespace", ["user": ["namespace": false, "uid": 1000, "gid": 1000]]),
        ("profile.user.gid", ["user": ["gid": 0]]),
        ("profile.runtime", ["runtime": "runc"]),
        ("profile.runtime", ["runtime": "crun"]),
    ] }

    @Test func tenantsCannotWeakenIsolation() async throws {
        try await ServedApp.with(isolationPolicy: IsolationPolicy(floor: .container)) { app in
            let client = try app.client(try await app.key("mallory"))
            for (field, profile) in Self.weakening {
                for path in ["/v1/sandboxes", "/v1/runs"] {
                    var body: [String: Any] = ["profile": profile]
                    if path == "/v1/runs" { body["cmd"] = ["id"] }
                    let reply = try await client.send("POST", path, body: try jsonBytes(body))
                    let problem = try ProblemBody.of(reply, status: 403, code: "forbidden")
                    #expect(problem.field == field, "\(path) \(profile): \(problem.detail)")
                }
            }
            // An isolation below the operator's floor, by the request's field or the profile's.
            for (field, body) in [("isolation", ["isolation": "wasm"] as [String: Any]), ("profile.isolation", ["profile": ["isolation": "wasm"]])] {
                let reply = try await client.send("POST", "/v1/sandboxes", body: try jsonBytes(body))
                #expect(try ProblemBody.of(reply, status: 403, code: "forbidden").field == field)
                var run = body
                run["cmd"] = ["true"]
                let queued = try await client.send("POST", "/v1/runs", body: try jsonBytes(run))
                #expect(try ProblemBody.of(queued, status: 403, code: "forbidden").field == field)
            }
            // Nothing was created or queued.
            for path in ["/v1/sandboxes", "/v1/runs"] {
                let listed = try await client.send("GET", path)
                let items = (try JSONSerialization.jsonObject(with: Data(listed.body)) as? [String: Any])?["items"] as? [Any]
                #expect(listed.status == 200 && items?.isEmpty == true, "\(path): \(listed.body.text)")
            }
        }
    }

    @Test func theOperatorCanTrustATenant() async throws {
        try await ServedApp.with(isolationPolicy: IsolationPolicy(floor: .container, trustedTenants: ["ops"])) { app in
            // An isolation below the floor is refused to others, allowed to the trusted tenant.
            let others = try app.client(try await app.key("acme"))
            let refused = try await others.send("POST", "/v1/sandboxes", body: try jsonBytes(["isolation": "wasm"]))
            _ = try ProblemBody.of(refused, status: 403, code: "forbidden")
            let ops = try app.client(try await app.key("ops"))
            let created = try await ops.send("POST", "/v1/sandboxes", body: try jsonBytes(["isolation": "wasm", "ttl": "1m"]))
            #expect(created.status == 201, "\(created.body.text)")
            if let id = (try? JSONSerialization.jsonObject(with: Data(created.body)) as? [String: Any])?["id"] as? String {
                _ = try await ops.send("DELETE", "/v1/sandboxes/\(id)")
            }
        }
    }
}
