import Foundation
import NIOCore
import NIOPosix
import SandboxCommands
import SandboxServer
import Testing

/// The monitor's session table: ids, idle and absolute expiry, the capacity bound.
@Suite struct MonitorSessionTests {
    let caller = Caller(tenantId: "t-1", keyId: "key-1")

    @Test func openLookUpClose() async {
        let sessions = MonitorSessions()
        let id = await sessions.open(caller: caller, key: "sbx_secret")
        #expect(id.count == 64 && id.allSatisfy(\.isHexDigit))
        #expect(await sessions.open(caller: caller, key: "sbx_secret") != id)
        #expect(await sessions.session(id)?.caller == caller)
        #expect(await sessions.session("nope") == nil)
        #expect(await sessions.session(nil) == nil)
        await sessions.close(id)
        #expect(await sessions.session(id) == nil)
    }

    @Test func idleAndMaximumAge() async {
        let sessions = MonitorSessions(configuration: .init(idleTimeout: 60, maxAge: 300))
        let t0 = Date()
        let id = await sessions.open(caller: caller, key: "k", now: t0)
        #expect(await sessions.session(id, now: t0.addingTimeInterval(59)) != nil)
        // Each use restarts the idle clock ...
        #expect(await sessions.session(id, now: t0.addingTimeInterval(118)) != nil)
        #expect(await sessions.session(id, now: t0.addingTimeInterval(177)) != nil)
        #expect(await sessions.session(id, now: t0.addingTimeInterval(236)) != nil)
        // ... but not the maximum age.
        #expect(await sessions.session(id, now: t0.addingTimeInterval(301)) == nil)
        let idle = await sessions.open(caller: caller, key: "k", now: t0)
        #expect(await sessions.session(idle, now: t0.addingTimeInterval(61)) == nil)
    }

    @Test func capacityDropsTheLeastRecentlyUsed() async {
        let sessions = MonitorSessions(configuration: .init(capacity: 2))
        let t0 = Date()
        let a = await sessions.open(caller: caller, key: "k", now: t0)
        let b = await sessions.open(caller: caller, key: "k", now: t0.addingTimeInterval(1))
        _ = await sessions.session(a, now: t0.addingTimeInterval(2))
        let c = await sessions.open(caller: caller, key: "k", now: t0.addingTimeInterval(3))
        #expect(await sessions.count == 2)
        #expect(await sessions.session(b, now: t0.addingTimeInterval(4)) == nil)
        #expect(await sessions.session(a, now: t0.addingTimeInterval(4)) != nil)
        #expect(await sessions.session(c, now: t0.addingTimeInterval(4)) != nil)
    }
}

/// Login, logout, the page and the WebSocket's refusals, over real HTTP.
@Suite struct MonitorRouteTests {
    static func form(_ key: String) -> [UInt8] {
        Array(("key=" + (key.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")).utf8)
    }

    /// One HTTP/1.1 request with any headers; the whole response as text.
    static func raw(_ port: Int, _ method: String, _ path: String, headers: [String: String] = [:], body: [UInt8] = []) async throws -> String {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        return try await channel.executeThenClose { inbound, outbound in
            var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\nContent-Length: \(body.count)\r\n"
            for (name, value) in headers { head += "\(name): \(value)\r\n" }
            try await outbound.write(ByteBuffer(bytes: Array((head + "\r\n").utf8) + body))
            var text = ""
            for try await chunk in inbound { text += String(buffer: chunk) }
            return text
        }
    }

    static func sessionCookie(_ reply: APIClient.Reply) throws -> String {
        let header = try #require(reply.headers["set-cookie"])
        return String(try #require(header.split(separator: ";").first))
    }

    @Test func loginPageAndLogout() async throws {
        try await ServedApp.with { app in
            let key = try await app.key("acme")
            let client = try app.client(nil)
            let page = try await client.send("GET", "/monitor")
            #expect(page.status == 200 && page.body.text.contains("name=\"key\""))
            #expect(page.headers["content-security-policy"]?.contains("default-src 'self'") == true)

            let wrong = try await client.send("POST", "/monitor/login", body: Self.form("sbx_wrong"), contentType: "application/x-www-form-urlencoded")
            #expect(wrong.status == 401 && wrong.body.text.contains("unknown or revoked API key"))
            #expect(wrong.headers["set-cookie"] == nil)
            let empty = try await client.send("POST", "/monitor/login", body: Self.form(""), contentType: "application/x-www-form-urlencoded")
            #expect(empty.status == 400)

            let login = try await client.send("POST", "/monitor/login", body: Self.form(key), contentType: "application/x-www-form-urlencoded")
            #expect(login.status == 303 && login.headers["location"] == "/monitor")
            let setCookie = try #require(login.headers["set-cookie"])
            for attribute in ["HttpOnly", "SameSite=Strict", "Path=/monitor"] { #expect(setCookie.contains(attribute), "\(setCookie)") }
            #expect(!setCookie.contains(key))
            let cookie = try Self.sessionCookie(login)

            let app1 = try await Self.raw(app.port, "GET", "/monitor", headers: ["Cookie": cookie])
            #expect(app1.contains("/monitor/app.js") && !app1.contains(key))
            let crossSite = try await Self.raw(app.port, "POST", "/monitor/logout", headers: ["Cookie": cookie, "Origin": "https://evil.example"])
            #expect(crossSite.hasPrefix("HTTP/1.1 403"))
            let out = try await Self.raw(app.port, "POST", "/monitor/logout", headers: ["Cookie": cookie, "Origin": app.url])
            #expect(out.hasPrefix("HTTP/1.1 303"))
            #expect(try await Self.raw(app.port, "GET", "/monitor", headers: ["Cookie": cookie]).contains("name=\"key\""))

            let audit = try await app.manager.tenantAudit(tenantId: try #require(try await app.store.authenticate(key: key)).tenantId)
            #expect(audit.contains { $0.kind == .monitorLogin })
        }
    }

    @Test func webSocketNeedsASessionFromItsOwnOrigin() async throws {
        try await ServedApp.with { app in
            let key = try await app.key("acme")
            let notUpgraded = try await app.client(nil).send("GET", "/monitor/ws")
            _ = try ProblemBody.of(notUpgraded, status: 401, code: "unauthorized")

            try await TestWebSocket.with(port: app.port, path: "/monitor/ws", key: nil, headers: ["Origin": app.url]) { ws, status, _ in
                #expect(status == 101)
                let message = try await ws!.receive()
                guard case let .text(text) = message else { Issue.record("expected an error message, got \(String(describing: message))"); return }
                #expect(text.contains("\"type\":\"error\"") && text.contains("unauthorized"))
                #expect(try await ws!.receive() == .close)
            }

            let login = try await app.client(nil).send("POST", "/monitor/login", body: Self.form(key), contentType: "application/x-www-form-urlencoded")
            let cookie = try Self.sessionCookie(login)
            try await TestWebSocket.with(port: app.port, path: "/monitor/ws", key: nil, headers: ["Origin": "https://evil.example", "Cookie": cookie]) { ws, _, _ in
                guard case let .text(text)? = try await ws!.receive() else { Issue.record("expected an error message"); return }
                #expect(text.contains("\"type\":\"error\"") && text.contains("origin"))
            }
            try await TestWebSocket.with(port: app.port, path: "/monitor/ws", key: nil, headers: ["Origin": app.url, "Cookie": cookie]) { ws, _, _ in
                guard case let .text(text)? = try await ws!.receive() else { Issue.record("expected the snapshot"); return }
                #expect(text.contains("\"type\":\"snapshot\"") && text.contains("\"tenant\":\"acme\""))
                try await ws!.close()
            }
        }
    }
}
