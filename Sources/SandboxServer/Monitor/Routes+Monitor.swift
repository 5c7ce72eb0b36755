import Foundation
import Hummingbird
import SandboxCore
import HummingbirdWebSocket
import SandboxStore

extension SandboxServer {
    /// The session cookie of the monitor (HttpOnly, SameSite=Strict, Path=/monitor).
    static let monitorCookie = "sandboxer_session"

    /// The execution monitor's HTTP routes: the page (or the login form), login, logout, its script
    /// and styles, and the WebSocket path's answer to a request that was not upgraded. They sit
    /// outside `/v1`: the session cookie, not a bearer header, authenticates them.
    func addMonitorRoutes(_ routes: RouteRegistry) {
        let sessions = monitorSessions
        let store = self.store
        let manager = self.manager
        let throttle = loginThrottle

        routes.add(.get, "/monitor") { request, _ in
            await sessions.session(request.cookies[Self.monitorCookie]?.value) == nil ? MonitorPage.login() : MonitorPage.app()
        }
        routes.add(.get, "/monitor/app.js") { _, _ in MonitorPage.script }
        routes.add(.get, "/monitor/app.css") { _, _ in MonitorPage.styles }

        routes.add(.post, "/monitor/login") { request, context in
            guard MonitorOrigin.isSameOrigin(request) else {
                return MonitorPage.login(error: "refused: the login form was posted from another site", status: .forbidden)
            }
            if let wait = throttle.admit(ConnectionGuardHandler.clientKey(context.remoteAddress)) {
                var page = MonitorPage.login(error: "too many login attempts from this address; wait \(wait) s", status: .tooManyRequests)
                page.headers[.retryAfter] = String(wait)
                return page
            }
            let body = try await BodyReader.collect(request, limit: 16 << 10, name: "monitor_login_bytes")
            let form = try? URLEncodedFormDecoder().decode(LoginForm.self, from: String(decoding: body, as: UTF8.self))
            guard let key = form?.key?.trimmingCharacters(in: .whitespacesAndNewlines), !key.isEmpty else {
                return MonitorPage.login(error: "enter an API key", status: .badRequest)
            }
            guard let record = try await store.authenticate(key: key) else {
                return MonitorPage.login(error: "unknown or revoked API key", status: .unauthorized)
            }
            let caller = Caller(tenantId: record.tenantId, keyId: record.id)
            let id = await sessions.open(caller: caller, key: key)
            manager.recordTenantEvent(TenantEvent(tenantId: caller.tenantId, kind: .monitorLogin, actor: caller.keyId, detail: ["status": 303]))
            var response = MonitorPage.redirect()
            response.setCookie(Self.sessionCookie(id, request: request))
            return response
        }

        routes.add(.post, "/monitor/logout") { request, _ in
            guard MonitorOrigin.isSameOrigin(request) else {
                return MonitorPage.login(error: "refused: the logout was posted from another site", status: .forbidden)
            }
            await sessions.close(request.cookies[Self.monitorCookie]?.value)
            var response = MonitorPage.redirect()
            response.setCookie(Self.sessionCookie("", request: request, maxAge: 0))
            return response
        }

        routes.add(.get, "/monitor/ws") { request, _ in
            guard await sessions.session(request.cookies[Self.monitorCookie]?.value) != nil else {
                throw Problem(status: 401, code: "unauthorized", detail: "no monitor session: log in at /monitor first")
            }
            throw Problem(status: 426, code: "invalid_request", detail: "this endpoint is a WebSocket: send an Upgrade: websocket request")
        }
    }

    /// The monitor's WebSocket on the upgrade router: a session cookie and a same-origin request
    /// (no cross-site WebSocket hijacking), else one `error` message and a close with code 1008.
    func addMonitorWebSocket(_ router: Router<APIRequestContext>) {
        let sessions = monitorSessions
        let feed = MonitorFeed(runs: runs?.store, manager: manager, logger: logger)
        let maxMessage = configuration.maxWebSocketMessageBytes
        router.ws("/monitor/ws") { inbound, outbound, ws in
            let sessionId = ws.request.cookies[Self.monitorCookie]?.value
            let problem: Problem
            if !MonitorOrigin.isSameOrigin(ws.request) {
                problem = Problem(status: 403, code: "unauthorized", detail: "the monitor's WebSocket only accepts its own page's origin")
            } else if let sessionId, let session = await sessions.session(sessionId) {
                let socket = MonitorSocket(feed: feed, sessions: sessions, sessionId: sessionId, caller: session.caller, maxMessage: maxMessage)
                try await socket.serve(inbound: inbound, outbound: outbound)
                return
            } else {
                problem = Problem(status: 401, code: "unauthorized", detail: "no monitor session: log in at /monitor first")
            }
            var message = MonitorMessage(type: "error")
            message.problem = problem
            try await outbound.writeTextMessage(message.json)
            try await outbound.close(.policyViolation, reason: problem.code)
        }
    }

    /// The session cookie (`maxAge` 0 deletes it). `Secure` when the request came over HTTPS
    /// through a proxy that says so.
    static func sessionCookie(_ value: String, request: Request, maxAge: Int? = nil) -> Cookie {
        let https = request.headers[MonitorPage.FieldName("X-Forwarded-Proto")!]?.lowercased() == "https"
        return Cookie(name: monitorCookie, value: value, maxAge: maxAge, path: "/monitor", secure: https, httpOnly: true, sameSite: .strict)
    }
}

/// The login form's fields.
struct LoginForm: Decodable {
    var key: String?
}

/// The same-origin check of the monitor's state-changing requests and its WebSocket: a browser
/// always sends `Origin` on them, and it must name this server (`Host`). A request without `Origin`
/// is not a browser's cross-site request (curl, tests) and passes.
enum MonitorOrigin {
    static func isSameOrigin(_ request: Request) -> Bool {
        guard let origin = request.headers[.origin] else { return true }
        guard let host = request.head.authority ?? request.headers[MonitorPage.FieldName("Host")!],
              let url = URL(string: origin), let originHost = url.host, url.scheme == "http" || url.scheme == "https" else {
            return false
        }
        let named = url.port.map { "\(originHost):\($0)" } ?? originHost
        return named.lowercased() == host.lowercased()
    }
}
