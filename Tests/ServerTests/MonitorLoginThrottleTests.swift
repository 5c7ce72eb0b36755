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
            let port = app.port
            let statuses = try await RawClient.offPool {
                try (0..<(allowance + 5)).map { i in try RawClient.status(from: "127.0.0.1", port: port, Self.loginRequest(port: port, key: "sbx_guess\(i)")) }
            }
            #expect(statuses.prefix(allowance).allSatisfy { $0 == 401 }, "\(statuses)")
            #expect(statuses.suffix(5).allSatisfy { $0 == 429 }, "\(statuses)")
            // Even the right key waits: the allowance counts attempts, not failures.
            let key = try await app.key("acme")
            let after = try await RawClient.offPool {
                [try RawClient.status(from: "127.0.0.1", port: port, Self.loginRequest(port: port, key: key)),
                 // Another address is answered.
                 try RawClient.status(from: "127.0.0.2", port: port, Self.loginRequest(port: port, key: "sbx_guess")),
                 try RawClient.status(from: "127.0.0.2", port: port, Self.loginRequest(port: port, key: key))]
            }
            #expect(after == [429, 401, 303], "\(after)")
        }
    }
}

extension ServedApp {
    /// Login attempts one address may make per minute (the server's default).
    var throttleAllowance: Int { LoginThrottle().perMinute }
}
