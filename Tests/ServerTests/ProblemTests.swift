import Foundation
import SandboxCore
import SandboxCommands
import SandboxServer
import Testing

/// problem+json for malformed requests; bodies are JSON whatever the Content-Type.
@Suite struct ProblemTests {
    @Test func badJSONIs400() async throws {
        try await ServedApp.with { app in
            let client = try app.client(try await app.key("acme"))
            let p = try ProblemBody.of(try await client.send("POST", "/v1/sandboxes", body: Array("{\"profile\":".utf8)),
                                       status: 400, code: "invalid_request")
            #expect(p.detail.contains("not valid JSON"))
            _ = try ProblemBody.of(try await client.send("POST", "/v1/sandboxes", body: Array("[1,2]".utf8)), status: 400, code: "invalid_request")
        }
    }

    @Test func unknownFieldIsNamed() async throws {
        try await ServedApp.with { app in
            let client = try app.client(try await app.key("acme"))
            let p = try ProblemBody.of(try await client.send("POST", "/v1/sandboxes", body: try jsonBytes(["profile": "default", "tll": "5m"])),
                                       status: 400, code: "invalid_request")
            #expect(p.field == "tll")
            #expect(p.detail.contains("tll"))
            let ttl = try ProblemBody.of(try await client.send("POST", "/v1/sandboxes", body: try jsonBytes(["ttl": "soon"])),
                                         status: 400, code: "invalid_request")
            #expect(ttl.field == "ttl")
            let iso = try ProblemBody.of(try await client.send("POST", "/v1/sandboxes", body: try jsonBytes(["isolation": "vm"])),
                                         status: 400, code: "invalid_request")
            #expect(iso.field == "isolation")
        }
    }

    @Test func formEncodedContentTypeIsStillJSON() async throws {
        try await ServedApp.with { app in
            let client = try app.client(try await app.key("acme"))
            // What plain `curl -d` sends: the body is still read as JSON, so the unknown field is found.
            let reply = try await client.send("POST", "/v1/sandboxes", body: try jsonBytes(["bogus": 1]),
                                              contentType: "application/x-www-form-urlencoded")
            let p = try ProblemBody.of(reply, status: 400, code: "invalid_request")
            #expect(p.field == "bogus")
        }
    }

    @Test func oversizedBodyIs413NamingTheLimit() async throws {
        try await ServedApp.with(configuration: .init(port: 0, maxJSONBytes: 1024)) { app in
            let client = try app.client(try await app.key("acme"))
            let big = try jsonBytes(["profile": "default", "metadata": ["x": String(repeating: "a", count: 4000)]])
            let p = try ProblemBody.of(try await client.send("POST", "/v1/sandboxes", body: big), status: 413, code: "limit_exceeded")
            #expect(p.name == "max_json_body_bytes")
            #expect(p.limit == 1024)
            #expect(p.actual == Int64(big.count))
            #expect(p.detail.contains("1024"))
        }
    }

    @Test func unknownRouteIs404Problem() async throws {
        try await ServedApp.with { app in
            let client = try app.client(try await app.key("acme"))
            let p = try ProblemBody.of(try await client.send("GET", "/v1/nothing"), status: 404, code: "not_found")
            #expect(p.detail.contains("/v1/nothing"))
            _ = try ProblemBody.of(try await client.send("GET", "/nothing"), status: 404, code: "not_found")
        }
    }

    @Test func unknownSandboxIs404() async throws {
        try await ServedApp.with { app in
            let client = try app.client(try await app.key("acme"))
            _ = try ProblemBody.of(try await client.send("GET", "/v1/sandboxes/sbx-nope"), status: 404, code: "not_found")
            _ = try ProblemBody.of(try await client.send("POST", "/v1/sandboxes/sbx-nope/exec", body: try jsonBytes(["cmd": ["true"]])),
                                   status: 404, code: "not_found")
        }
    }

    @Test func unknownProfileIs404() async throws {
        try await ServedApp.with { app in
            let client = try app.client(try await app.key("acme"))
            let p = try ProblemBody.of(try await client.send("POST", "/v1/sandboxes", body: try jsonBytes(["profile": "nope"])),
                                       status: 404, code: "not_found")
            #expect(p.detail.contains("nope"))
            let inline = try ProblemBody.of(try await client.send("POST", "/v1/sandboxes", body: try jsonBytes(["profile": ["limitz": 1]])),
                                            status: 400, code: "invalid_request")
            #expect(inline.field == "profile.limitz" && inline.detail.contains("limitz"))
        }
    }

    @Test func sandboxErrorsMapToStatuses() {
        #expect(Problem(SandboxError(.quotaExceeded, "too many", retryAfterSeconds: 7)).status == 429)
        #expect(Problem(SandboxError(.quotaExceeded, "too many", retryAfterSeconds: 7)).retryAfter == 7)
        #expect(Problem(SandboxError(.invalidState, "stopping")).status == 409)
        #expect(Problem(SandboxError.over("input_bytes", limit: 10, actual: 20)).status == 413)
        #expect(Problem(SandboxError.over("input_bytes", limit: 10, actual: 20)).name == "input_bytes")
        struct Weird: Error {}
        let p = Problem(Weird())
        #expect(p.status == 500 && p.code == "internal" && !p.detail.contains("Weird"))
    }
}
