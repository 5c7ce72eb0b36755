import Foundation
import SandboxCommands
import SandboxCore
import SandboxServer
import SandboxStore
import SandboxTestSupport
import Testing

/// E2B's control plane over real HTTP: what E2B's SDKs send and read (X-API-KEY, camelCase JSON,
/// `{"code", "message"}` errors, `x-next-token`).
@Suite(.serialized) struct E2BControlTests {
    struct Created: Decodable {
        var sandboxID: String
        var templateID: String
        var clientID: String
        var envdVersion: String
        var envdAccessToken: String
        var alias: String
    }

    struct Info: Decodable {
        var sandboxID: String
        var templateID: String
        var state: String
        var startedAt: String
        var endAt: String
        var cpuCount: Int
        var memoryMB: Int
        var diskSizeMB: Int
        var envdVersion: String
        var metadata: [String: String]
    }

    struct E2BError: Decodable {
        var code: Int
        var message: String
    }

    static func send(_ app: ServedApp, _ key: String?, _ method: String, _ path: String, _ body: [String: Any]? = nil,
                     headers: [String: String] = [:]) async throws -> APIClient.Reply {
        var h = headers
        if let key { h["X-API-KEY"] = key }
        return try await app.client(nil).send(method, path, body: try body.map(jsonBytes), headers: h)
    }

    static func error(_ reply: APIClient.Reply, _ status: Int, sourceLocation: SourceLocation = #_sourceLocation) throws -> E2BError {
        #expect(reply.status == status, "\(reply.status): \(reply.body.text)", sourceLocation: sourceLocation)
        let e = try JSONDecoder().decode(E2BError.self, from: Data(reply.body))
        #expect(e.code == status && !e.message.isEmpty, sourceLocation: sourceLocation)
        return e
    }

    @Test("a missing, unknown or revoked X-API-KEY is a 401 in E2B's shape; a /v1 bearer key is not read there")
    func keys() async throws {
        try await ServedApp.with { app in
            #expect(try Self.error(try await Self.send(app, nil, "GET", "/v2/sandboxes"), 401).message.contains("X-API-KEY"))
            _ = try Self.error(try await Self.send(app, "e2b_" + String(repeating: "0", count: 40), "GET", "/sandboxes"), 401)
            let (key, record) = try await app.store.createAPIKey(tenantName: "acme", shape: .e2b)
            let ok = try await Self.send(app, key, "GET", "/v2/sandboxes")
            #expect(ok.status == 200 && ok.body.text == "[]", "\(ok.body.text)")
            let bearer = try await app.client(key).send("GET", "/v1/sandboxes")
            #expect(bearer.status == 200, "an E2B-shaped key is a /v1 key too: \(bearer.body.text)")
            _ = try Self.error(try await app.client(key).send("GET", "/v2/sandboxes"), 401)
            try await app.store.revokeAPIKey(id: record.id)
            _ = try Self.error(try await Self.send(app, key, "GET", "/v2/sandboxes"), 401)
        }
    }

    @Test("an unknown template is a 404 naming it; a malformed body a 400; an unknown sandbox a 404")
    func badInput() async throws {
        try await ServedApp.with { app in
            let key = try await app.key("acme")
            let missing = try Self.error(try await Self.send(app, key, "POST", "/sandboxes", ["templateID": "no-such-template"]), 404)
            #expect(missing.message.contains("no-such-template"))
            _ = try Self.error(try await Self.send(app, key, "POST", "/v2/sandboxes", ["templateID": "../../etc"]), 404)
            #expect(try Self.error(try await Self.send(app, key, "POST", "/sandboxes", ["timeout": 5]), 400).message.contains("templateID"))
            _ = try Self.error(try await Self.send(app, key, "POST", "/sandboxes", ["templateID": "base", "mcp": ["x": 1]]), 400)
            for (method, path) in [("GET", "/sandboxes/sbx-000000000000"), ("DELETE", "/sandboxes/sbx-000000000000")] {
                _ = try Self.error(try await Self.send(app, key, method, path), 404)
            }
            _ = try Self.error(try await Self.send(app, key, "POST", "/sandboxes/sbx-000000000000/connect", ["timeout": 10]), 404)
            #expect(try Self.error(try await Self.send(app, key, "GET", "/v2/sandboxes?state=gone"), 400).message.contains("state"))
        }
    }

    @Test(.realSandboxes) func createReadListTimeoutConnectPauseKill() async throws {
        try await ServedApp.with { app in
            let key = try await app.key("acme")
            let other = try await app.key("beta")
            var ids: [String] = []
            for i in 0..<3 {
                let reply = try await Self.send(app, key, "POST", i == 0 ? "/sandboxes" : "/v2/sandboxes",
                                                ["templateID": "base", "timeout": 120, "metadata": ["suite": "e2b", "n": "\(i)"],
                                                 "envVars": ["GREETING": "hi"], "secure": true, "allow_internet_access": true])
                #expect(reply.status == 201, "\(reply.body.text)")
                let created = try JSONDecoder().decode(Created.self, from: Data(reply.body))
                #expect(created.templateID == "base" && created.envdVersion == "0.6.4" && !created.clientID.isEmpty)
                #expect(created.envdAccessToken.count == 64, "a 256-bit token")
                ids.append(created.sandboxID)
            }

            let info = try JSONDecoder().decode(Info.self, from: Data(try await Self.send(app, key, "GET", "/sandboxes/\(ids[0])").body))
            #expect(info.state == "running" && info.metadata == ["suite": "e2b", "n": "0"] && info.memoryMB > 0 && info.cpuCount >= 1)
            let started = try Date(info.startedAt, strategy: .iso8601), ends = try Date(info.endAt, strategy: .iso8601)
            #expect(abs(ends.timeIntervalSince(started) - 120) < 5, "timeout is the TTL")
            let view = try LifecycleTests.decode(SandboxView.self, try await app.client(key).checked("GET", "/v1/sandboxes/\(ids[0])"))
            #expect(view.id == ids[0], "the same sandbox through /v1")

            // Paging: limit 2, the next page in x-next-token; metadata filtered as the SDK encodes it.
            var seen: [String] = []
            var path = "/v2/sandboxes?limit=2&metadata=suite%3De2b"
            var pages = 0
            while true {
                let page = try await Self.send(app, key, "GET", path)
                #expect(page.status == 200, "\(page.body.text)")
                seen += try JSONDecoder().decode([Info].self, from: Data(page.body)).map(\.sandboxID)
                pages += 1
                guard let next = page.headers["x-next-token"] else { break }
                path = "/v2/sandboxes?limit=2&metadata=suite%3De2b&nextToken=\(next)"
            }
            #expect(seen == ids && pages == 2)
            let one = try JSONDecoder().decode([Info].self, from: Data(try await Self.send(app, key, "GET", "/v2/sandboxes?metadata=n%3D1").body))
            #expect(one.map(\.sandboxID) == [ids[1]])
            #expect(try JSONDecoder().decode([Info].self, from: Data(try await Self.send(app, key, "GET", "/sandboxes").body)).count == 3)

            // Another tenant sees nothing and touches nothing.
            #expect(try await Self.send(app, other, "GET", "/v2/sandboxes").body.text == "[]")
            _ = try Self.error(try await Self.send(app, other, "GET", "/sandboxes/\(ids[0])"), 404)
            _ = try Self.error(try await Self.send(app, other, "DELETE", "/sandboxes/\(ids[0])"), 404)
            _ = try Self.error(try await Self.send(app, other, "POST", "/sandboxes/\(ids[0])/connect", ["timeout": 10]), 404)
            _ = try Self.error(try await Self.send(app, other, "POST", "/sandboxes/\(ids[0])/timeout", ["timeout": 10]), 404)

            #expect(try await Self.send(app, key, "POST", "/sandboxes/\(ids[0])/timeout", ["timeout": 600]).status == 204)
            let longer = try JSONDecoder().decode(Info.self, from: Data(try await Self.send(app, key, "GET", "/sandboxes/\(ids[0])").body))
            #expect(try Date(longer.endAt, strategy: .iso8601).timeIntervalSinceNow > 500)

            #expect(try await Self.send(app, key, "POST", "/sandboxes/\(ids[1])/pause").status == 204)
            _ = try Self.error(try await Self.send(app, key, "POST", "/sandboxes/\(ids[1])/pause"), 409)
            let paused = try JSONDecoder().decode(Info.self, from: Data(try await Self.send(app, key, "GET", "/sandboxes/\(ids[1])").body))
            #expect(paused.state == "paused")
            let resumed = try await Self.send(app, key, "POST", "/v2/sandboxes/\(ids[1])/connect", ["timeout": 60])
            #expect(resumed.status == 201, "a paused sandbox resumes: \(resumed.body.text)")
            let running = try await Self.send(app, key, "POST", "/sandboxes/\(ids[1])/connect", ["timeout": 60])
            #expect(running.status == 200)
            let tokens = try [resumed, running].map { try JSONDecoder().decode(Created.self, from: Data($0.body)).envdAccessToken }
            #expect(Set(tokens).count == 2, "each connect hands out its own token")
            let record = try #require(try await app.store.sandbox(id: ids[1]))
            #expect(tokens.allSatisfy { record.envdAccess?.accepts($0) == true } && record.envdAccess?.secure == true)

            for id in ids { #expect(try await Self.send(app, key, "DELETE", "/sandboxes/\(id)").status == 204) }
            _ = try Self.error(try await Self.send(app, key, "DELETE", "/sandboxes/\(ids[0])"), 404)
            _ = try Self.error(try await Self.send(app, key, "GET", "/sandboxes/\(ids[0])"), 404)
            #expect(try await Self.send(app, key, "GET", "/v2/sandboxes").body.text == "[]")

            let trail = try await app.store.events(sandboxId: ids[0], after: 0, limit: 100).map(\.kind)
            #expect(trail.contains(.sandboxCreate) && trail.contains(.sandboxTimeout), "the sandbox's own trail, as for /v1: \(trail)")
        }
    }

    @Test("a retry with the same Idempotency-Key answers the sandbox the first call made", .realSandboxes)
    func idempotency() async throws {
        try await ServedApp.with { app in
            let key = try await app.key("acme")
            let headers = ["Idempotency-Key": "create-1"]
            let first = try await Self.send(app, key, "POST", "/sandboxes", ["templateID": "base"], headers: headers)
            let again = try await Self.send(app, key, "POST", "/sandboxes", ["templateID": "base"], headers: headers)
            let other = try await Self.send(app, key, "POST", "/sandboxes", ["templateID": "base"], headers: ["Idempotency-Key": "create-2"])
            let ids = try [first, again, other].map { try JSONDecoder().decode(Created.self, from: Data($0.body)).sandboxID }
            #expect(ids[0] == ids[1] && ids[0] != ids[2])
            for id in Set(ids) { _ = try await Self.send(app, key, "DELETE", "/sandboxes/\(id)") }
        }
    }
}
