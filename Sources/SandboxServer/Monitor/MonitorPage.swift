import Foundation
import Hummingbird

/// The monitor's HTML pages and static files, served with headers that keep everything same-origin:
/// a CSP of `default-src 'self'` (no inline script or style, no external resources), no framing,
/// no caching, no referrer to other sites.
enum MonitorPage {
    typealias FieldName = HTTPFields.Element.Name

    static let securityHeaders: [(FieldName, String)] = [
        (.contentSecurityPolicy,
         "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
        (.xContentTypeOptions, "nosniff"),
        (FieldName("X-Frame-Options")!, "DENY"),
        (FieldName("Referrer-Policy")!, "same-origin"),
        (.cacheControl, "no-store"),
    ]

    /// A response with the security headers.
    static func response(_ status: HTTPResponse.Status, contentType: String, _ body: [UInt8]) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = contentType
        for (name, value) in securityHeaders { headers[name] = value }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    /// `303 See Other` to the monitor's page.
    static func redirect() -> Response {
        var response = response(.seeOther, contentType: "text/html; charset=utf-8", Array("<a href=\"/monitor\">/monitor</a>".utf8))
        response.headers[.location] = "/monitor"
        return response
    }

    /// The login form, with `error` above it.
    static func login(error: String? = nil, status: HTTPResponse.Status = .ok) -> Response {
        let message = error.map { "<p class=\"error\" id=\"login-error\" role=\"alert\">\(escape($0))</p>" } ?? ""
        return html(status, title: "sandboxer monitor — log in", """
            <main class="login">
              <h1>sandboxer <span>monitor</span></h1>
              \(message)
              <form method="post" action="/monitor/login" autocomplete="off">
                <label for="key">API key</label>
                <input id="key" name="key" type="password" placeholder="sbx_…" required autofocus>
                <button type="submit" id="login">Log in</button>
              </form>
              <p class="hint">The key stays on the server: this browser keeps only a session cookie.
              <code>sandboxer key create --tenant NAME</code> makes one.</p>
            </main>
            """)
    }

    /// The monitor itself (filled by `app.js` over the WebSocket).
    static func app() -> Response {
        html(.ok, title: "sandboxer monitor", """
            <header>
              <h1>sandboxer <span>monitor</span></h1>
              <span id="tenant" class="tenant"></span>
              <span id="conn" class="conn">connecting…</span>
              <form method="post" action="/monitor/logout"><button type="submit" id="logout">Log out</button></form>
            </header>
            <section class="counters" id="counters">
              <div><b id="c-queued">0</b><span>queued</span></div>
              <div><b id="c-running">0</b><span>running</span></div>
              <div><b id="c-sandboxes">0</b><span>live sandboxes</span></div>
              <div><b id="c-succeeded">0</b><span>succeeded, 10 min</span></div>
              <div><b id="c-failed">0</b><span>failed, 10 min</span></div>
              <div class="chart"><div id="bars" class="bars" title="per minute: succeeded (green) and failed (red), last 10 minutes"></div><span>per minute</span></div>
            </section>
            <p id="notice" class="notice" hidden></p>
            <main class="split">
              <div class="rows-wrap"><table id="rows">
                <thead><tr><th>id</th><th>state</th><th>isolation</th><th>profile</th><th class="cmd">command</th><th>duration</th><th>cpu</th><th>peak mem</th><th>outcome</th><th></th></tr></thead>
                <tbody></tbody>
              </table></div>
              <aside id="detail" hidden>
                <div class="detail-head"><h2 id="d-title"></h2><button type="button" id="d-close" title="close">×</button></div>
                <dl id="d-fields"></dl>
                <div class="actions"><button type="button" id="d-cancel">Cancel</button><button type="button" id="d-retry">Retry</button></div>
                <h3>Attempts</h3>
                <table id="d-attempts"><thead><tr><th>#</th><th>outcome</th><th>started</th><th>duration</th><th>sandbox</th><th>reason</th></tr></thead><tbody></tbody></table>
                <h3>Output <small>(live tail)</small></h3>
                <pre id="d-log"></pre>
              </aside>
            </main>
            <script src="/monitor/app.js"></script>
            """)
    }

    static func html(_ status: HTTPResponse.Status, title: String, _ body: String) -> Response {
        let page = """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(escape(title))</title><link rel="icon" href="data:,"><link rel="stylesheet" href="/monitor/app.css"></head>
            <body>
            \(body)
            </body></html>
            """
        return response(status, contentType: "text/html; charset=utf-8", Array(page.utf8))
    }

    static func escape(_ text: String) -> String {
        var out = ""
        for c in text {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
        return out
    }

    static var script: Response { response(.ok, contentType: "text/javascript; charset=utf-8", PackageResources.monitor_js) }
    static var styles: Response { response(.ok, contentType: "text/css; charset=utf-8", PackageResources.monitor_css) }
}
