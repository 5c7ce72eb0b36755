import Foundation
import SandboxCommands
import SandboxCore
import SandboxServer
import SandboxStore
import SandboxTestSupport
import Testing

/// Who may use a sandbox through E2B's sandbox plane (`E2b-Sandbox-Id`), over real HTTP: one of
/// its envd tokens or its tenant's key; a wrong token is a 401, a foreign key or an unknown id
/// answers as for a sandbox that does not exist (E2B's proxy: 502 "was not found").
@Suite(.serialized) struct E2BAccessTests {
    static func plane(_ app: ServedApp, _ id: String, _ headers: [String: String]) async throws -> APIClient.Reply {
        try await app.client(nil).send("GET", "/health", headers: ["E2b-Sandbox-Id": id, "E2b-Sandbox-Port": "49983"].merging(headers) { $1 })
    }

    /// Past the access check: envd's `GET /health` answers 204.
    static func admitted(_ reply: APIClient.Reply, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(reply.status == 204, "\(reply.status): \(reply.body.text)", sourceLocation: sourceLocation)
    }

    @Test(.realSandboxes, arguments: [true, false]) func tokensAndKeys(secure: Bool) async throws {
        try await ServedApp.with { app in
            let key = try await app.key("acme")
            let other = try await app.key("beta")
            let created = try await E2BControlTests.send(app, key, "POST", "/sandboxes", ["templateID": "base", "secure": secure])
            let sandbox = try JSONDecoder().decode(E2BControlTests.Created.self, from: Data(created.body))
            let id = sandbox.sandboxID

            Self.admitted(try await Self.plane(app, id, ["X-Access-Token": sandbox.envdAccessToken]))
            Self.admitted(try await Self.plane(app, id, ["X-API-KEY": key]))
            let wrong = try await Self.plane(app, id, ["X-Access-Token": EnvdAccess.newToken(), "X-API-KEY": key])
            #expect(wrong.status == 401 && wrong.body.text.contains("access token"), "a wrong token is refused even with the owner's key: \(wrong.body.text)")
            #expect(try await Self.plane(app, id, ["X-Access-Token": String(sandbox.envdAccessToken.dropLast())]).status == 401)
            let none = try await Self.plane(app, id, [:])
            #expect(none.status == 401, "no token, no key: refused whether or not the sandbox is secure (ids are not secret enough): \(none.body.text)")

            let foreign = try await Self.plane(app, id, ["X-API-KEY": other])
            let unknown = try await Self.plane(app, "sbx-000000000000", ["X-API-KEY": other])
            #expect(foreign.status == 502 && unknown.status == 502, "another tenant's sandbox looks like no sandbox")
            #expect(foreign.body.text.contains("was not found") && unknown.body.text.contains("was not found"))

            // A connect hands out another token; both work.
            let connected = try await E2BControlTests.send(app, key, "POST", "/sandboxes/\(id)/connect", ["timeout": 60])
            let second = try JSONDecoder().decode(E2BControlTests.Created.self, from: Data(connected.body)).envdAccessToken
            Self.admitted(try await Self.plane(app, id, ["X-Access-Token": second]))
            Self.admitted(try await Self.plane(app, id, ["X-Access-Token": sandbox.envdAccessToken]))

            // Killed: every caller sees a sandbox that is gone.
            _ = try await E2BControlTests.send(app, key, "DELETE", "/sandboxes/\(id)")
            let gone = try await Self.plane(app, id, ["X-Access-Token": sandbox.envdAccessToken])
            #expect(gone.status == 502 && gone.body.text.contains("was not found"))
        }
    }

    @Test("a sandbox made through /v1 has no token until a connect hands one out; its tenant's key works", .realSandboxes)
    func v1Sandboxes() async throws {
        try await ServedApp.with { app in
            let key = try await app.key("acme")
            let made = try await app.client(key).checked("POST", "/v1/sandboxes", body: try jsonBytes([:]))
            let id = try LifecycleTests.decode(SandboxView.self, made).id
            Self.admitted(try await Self.plane(app, id, ["X-API-KEY": key]))
            #expect(try await Self.plane(app, id, [:]).status == 401)
            #expect(try await Self.plane(app, id, ["X-Access-Token": EnvdAccess.newToken()]).status == 401)
            let connected = try await E2BControlTests.send(app, key, "POST", "/sandboxes/\(id)/connect", ["timeout": 60])
            #expect(connected.status == 200, "\(connected.body.text)")
            let token = try JSONDecoder().decode(E2BControlTests.Created.self, from: Data(connected.body)).envdAccessToken
            Self.admitted(try await Self.plane(app, id, ["X-Access-Token": token]))
            _ = try await app.client(key).send("DELETE", "/v1/sandboxes/\(id)")
        }
    }
}
