import Foundation
import SandboxServer
import Testing

/// `/monitor/login` takes API keys from a form: guessing at it is throttled per client address
/// (issue 17, low item): after the minute's allowance every attempt is 429 with Retry-After,
/// while another address is still answered.
@Suite struct MonitorLoginThrottleTests {
    static func loginRequest(port: Int, key: String) -> String {
        let body = "key=\(key)"
        return "POST /monitor/login HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            + "Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
    }

    @Test func guessingKeysAtTheLoginFormIsThrottledPerAddress() async throws {
        try await ServedApp.with { app in
            let allowance = app.throttleAllowance
            var statuses: [Int] = []
            for i in 0..<(allowance + 5) {
                statuses.append(try RawClient.status(from: "127.0.0.1", port: app.port, Self.loginRequest(port: app.port, key: "sbx_guess\(i)")))
            }
            #expect(statuses.prefix(allowance).allSatisfy { $0 == 401 }, "\(statuses)")
            #expect(statuses.suffix(5).allSatisfy { $0 == 429 }, "\(statuses)")
            // Even the right key waits: the allowance counts attempts, not failures.
            let key = try await app.key("acme")
            #expect(try RawClient.status(from: "127.0.0.1", port: app.port, Self.loginRequest(port: app.port, key: key)) == 429)
            // Another address is answered.
            #expect(try RawClient.status(from: "127.0.0.2", port: app.port, Self.loginRequest(port: app.port, key: "sbx_guess")) == 401)
            #expect(try RawClient.status(from: "127.0.0.2", port: app.port, Self.loginRequest(port: app.port, key: key)) == 303)
        }
    }
}

extension ServedApp {
    /// Login attempts one address may make per minute (the server's default).
    var throttleAllowance: Int { LoginThrottle().perMinute }
}
