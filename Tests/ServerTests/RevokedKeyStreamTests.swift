import Foundation
import SandboxCommands
import SandboxCore
import SandboxServer
import SandboxStore
import SandboxTestSupport
import Testing

/// A revoked key keeps nothing open (issue 17, low item): streams opened with it — the events
/// WebSocket, an exec's server-sent events, an audit follow — are closed once it is revoked (the
/// key is checked again every 2 s) with an `unauthorized` problem.
@Suite struct RevokedKeyStreamTests {
    static func record(_ store: any ServerStore, key: String) async throws -> APIKeyRecord {
        try #require(try await store.authenticate(key: key))
    }

    /// A sandbox of the client's tenant (2 minutes), by id.
    static func createSandbox(_ client: APIClient) async throws -> String {
        let created = try await client.send("POST", "/v1/sandboxes", body: try jsonBytes(["ttl": "2m"]))
        return try #require((try JSONSerialization.jsonObject(with: Data(created.body)) as? [String: Any])?["id"] as? String)
    }

    @Test func theEventsSocketOfARevokedKeyIsClosed() async throws {
        try await ServedApp.with { app in
            let key = try await app.key("acme")
            let id = try await Self.record(app.store, key: key).id
            try await TestWebSocket.with(port: app.port, path: "/v1/events", key: key) { ws, status, _ in
                #expect(status == 101)
                guard var socket = ws else { return }
                try await app.store.revokeAPIKey(id: id)
                // Without the watch this waits for an event that never comes (the test's bound ends it).
                guard case let .text(t)? = try await socket.receive() else { Issue.record("closed without a problem"); return }
                #expect(t.contains("unauthorized") && t.contains("revoked"), "\(t)")
            }
        }
    }

    @Test(.realSandboxes) func theInteractiveExecSocketOfARevokedKeyIsClosedAndItsProcessEnds() async throws {
        try await ServedApp.with { app in
            let key = try await app.key("acme")
            let id = try await Self.record(app.store, key: key).id
            let client = try app.client(key)
            let sandbox = try await Self.createSandbox(client)
            let tenantId = try #require(try await app.store.sandbox(id: sandbox)?.tenantId)
            try await TestWebSocket.with(port: app.port, path: "/v1/sandboxes/\(sandbox)/exec/ws", key: key) { ws, status, _ in
                #expect(status == 101)
                guard var socket = ws else { return }
                try await socket.send(#"{"cmd":["sh","-c","sleep 300"]}"#)
                guard case let .text(started)? = try await socket.receive(), started.contains("\"started\"") else {
                    Issue.record("no started message"); return
                }
                try await app.store.revokeAPIKey(id: id)
                var problem = ""
                while let message = try await socket.receive() {
                    guard case let .text(t) = message else { break }
                    if t.contains("unauthorized") { problem = t; break }
                }
                #expect(problem.contains("revoked"), "the socket of a revoked key ends with the problem: \(problem)")
                try? await socket.close()
            }
            // The process the socket started is gone with it.
            let ps = try await app.manager.exec(tenantId: tenantId, id: sandbox, ExecRequest(argv: ["sh", "-c", "pgrep -c -f 'slee[p] 300' || true"]), actor: "test", output: nil)
            #expect(ps.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "0", "\(ps.stdout)")
            _ = try await app.manager.destroy(tenantId: tenantId, id: sandbox, actor: "test")
        }
    }

    @Test(.realSandboxes) func anExecStreamOfARevokedKeyEnds() async throws {
        try await ServedApp.with { app in
            let key = try await app.key("acme")
            let id = try await Self.record(app.store, key: key).id
            let client = try app.client(key)
            let sandbox = try await Self.createSandbox(client)
            let body = Body()
            let started = Date()
            let status = try await client.stream("POST", "/v1/sandboxes/\(sandbox)/exec", body: try jsonBytes(["cmd": ["sh", "-c", "echo up; sleep 60"]]),
                                                accept: "text/event-stream", onHead: { _, _ in }) { chunk in
                body.add(chunk)
                if body.text.contains("up") && !body.revoked {
                    body.revoked = true
                    try await app.store.revokeAPIKey(id: id)
                }
            }
            #expect(status == 200)
            #expect(body.text.contains("event: error") && body.text.contains("revoked"), "\(body.text)")
            #expect(Date().timeIntervalSince(started) < 50, "the stream ran to the command's end (a bound, not a speed test)")
            // The operator's cleanup: the sandbox is deleted through the manager (the key is gone).
            let tenantId = try #require(try await app.store.sandbox(id: sandbox)?.tenantId)
            _ = try await app.manager.destroy(tenantId: tenantId, id: sandbox, actor: "test")
        }
    }
}

/// Collected stream bytes.
final class Body: @unchecked Sendable {
    private let lock = NSLock()
    private var bytes: [UInt8] = []
    private var _revoked = false
    func add(_ b: [UInt8]) { lock.withLock { bytes += b } }
    var text: String { lock.withLock { String(decoding: bytes, as: UTF8.self) } }
    var revoked: Bool {
        get { lock.withLock { _revoked } }
        set { lock.withLock { _revoked = newValue } }
    }
}
