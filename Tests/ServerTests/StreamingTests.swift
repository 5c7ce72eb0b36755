import Foundation
import SandboxCommands
import SandboxCore
import SandboxManager
import SandboxServer
import SandboxTestSupport
import Testing

/// SSE exec, WebSocket exec with stdin, the events socket, background processes.
@Suite(.serialized) struct StreamingTests {
    /// Creates a sandbox, runs `body`, deletes it.
    static func withSandbox(_ app: ServedApp, key: String, _ body: (APIClient, String) async throws -> Void) async throws {
        let client = try app.client(key)
        let id = try LifecycleTests.decode(SandboxView.self, try await client.checked("POST", "/v1/sandboxes", body: Array("{}".utf8))).id
        try await body(client, id)
        _ = try await client.checked("DELETE", "/v1/sandboxes/\(id)")
    }

    @Test(.realSandboxes) func sseExecStreamsChunksThenResult() async throws {
        try await ServedApp.with { app in
            try await Self.withSandbox(app, key: try await app.key("acme")) { client, id in
                var parser = SSEParser()
                var events: [(String, String)] = []
                var contentType = ""
                let status = try await client.stream(
                    "POST", "/v1/sandboxes/\(id)/exec", body: try jsonBytes(["cmd": ["sh", "-c", "echo one; sleep 0.2; echo two >&2; exit 4"]]),
                    accept: "text/event-stream", onHead: { _, h in contentType = h["content-type"] ?? "" }
                ) { events += parser.feed($0).map { ($0.event, $0.data) } }
                #expect(status == 200 && contentType == "text/event-stream")
                #expect(events.map(\.0) == ["stdout", "stderr", "result"])
                #expect(SSEParser.chunk(events[0].1).text == "one\n")
                let result = try JSONDecoder().decode(ExecResult.self, from: Data(events[2].1.utf8))
                #expect(result.exitCode == 4 && result.stdout == "one\n" && result.stderr == "two\n")
            }
        }
    }

    @Test(.realSandboxes) func webSocketExecTakesStdin() async throws {
        try await ServedApp.with { app in
            let key = try await app.key("acme")
            try await Self.withSandbox(app, key: key) { _, id in
                try await TestWebSocket.with(port: app.port, path: "/v1/sandboxes/\(id)/exec/ws", key: key) { ws, status, head in
                    #expect(status == 101, "\(head)")
                    guard var socket = ws else { return }
                    try await socket.send(#"{"cmd":["sh","-c","read a; echo got:$a; cat; echo done >&2"]}"#)
                    guard case let .text(started)? = try await socket.receive() else { Issue.record("no started message"); return }
                    #expect(started.contains("\"started\""), "\(started)")
                    guard started.contains("\"started\"") else { return }
                    try await socket.send(#"{"type":"stdin","data":"hello\n"}"#)
                    try await socket.sendBinary(Array("rest".utf8))
                    try await socket.send(#"{"type":"close_stdin"}"#)
                    var stdout = ""
                    var result: [String: Any]?
                    while let message = try await socket.receive() {
                        guard case let .text(t) = message else { break }
                        let json = try #require(try JSONSerialization.jsonObject(with: Data(t.utf8)) as? [String: Any])
                        if json["type"] as? String == "stdout" { stdout += json["text"] as? String ?? "" }
                        if json["type"] as? String == "result" { result = json["result"] as? [String: Any]; break }
                    }
                    #expect(stdout == "got:hello\nrest")
                    #expect(result?["exit_code"] as? Int == 0, "\(String(describing: result))")
                    try? await socket.close()  // the server may have closed the connection already
                }
            }
        }
    }

    /// A refused WebSocket says why on the socket: an error message with the problem, then a close.
    @Test func webSocketRefusalsAreProblems() async throws {
        try await ServedApp.with { app in
            for (key, code) in [(nil, "unauthorized"), ("bad-key", "unauthorized"), (try await app.key("acme"), "not_found")] {
                try await TestWebSocket.with(port: app.port, path: "/v1/sandboxes/sbx-none/exec/ws", key: key) { ws, status, head in
                    #expect(status == 101, "\(head)")
                    guard var socket = ws else { return }
                    guard case let .text(t)? = try await socket.receive() else { Issue.record("no error message"); return }
                    let json = try #require(try JSONSerialization.jsonObject(with: Data(t.utf8)) as? [String: Any])
                    #expect(json["type"] as? String == "error")
                    #expect((json["problem"] as? [String: Any])?["code"] as? String == code, "\(t)")
                    #expect(try await socket.receive() == .close)
                }
            }
            try await TestWebSocket.with(port: app.port, path: "/v1/events", key: nil) { ws, status, _ in
                #expect(status == 101)
                guard var socket = ws else { return }
                guard case let .text(t)? = try await socket.receive() else { Issue.record("no error message"); return }
                #expect(t.contains("unauthorized"))
            }
            // Without an upgrade: a problem over HTTP.
            _ = try ProblemBody.of(try await app.client(try await app.key("acme")).send("GET", "/v1/events"), status: 426, code: "invalid_request")
            _ = try ProblemBody.of(try await app.client(nil).send("GET", "/v1/events"), status: 401, code: "unauthorized")
        }
    }

    @Test(.realSandboxes) func eventsSocketSeesTheTenantsSandboxes() async throws {
        try await ServedApp.with { app in
            let key = try await app.key("acme")
            try await TestWebSocket.with(port: app.port, path: "/v1/events", key: key) { ws, status, head in
                #expect(status == 101, "\(head)")
                guard var socket = ws else { return }
                try await Self.withSandbox(app, key: key) { _, id in
                    guard case let .text(t)? = try await socket.receive() else { Issue.record("no event"); return }
                    let event = try JSONDecoder.iso.decode(SandboxLifecycleEvent.self, from: Data(t.utf8))
                    #expect(event.type == .sandboxCreated && event.sandboxId == id)
                }
                try? await socket.close()
            }
        }
    }

    @Test(.realSandboxes) func backgroundProcessSignalAndOutput() async throws {
        try await ServedApp.with { app in
            try await Self.withSandbox(app, key: try await app.key("acme")) { client, id in
                let base = "/v1/sandboxes/\(id)/processes"
                let started = try await client.checked("POST", base, body: try jsonBytes(["cmd": ["sh", "-c", "echo up; exec sleep 60"], "tag": "sleeper"]))
                #expect(started.status == 201)
                let process = try JSONDecoder().decode(SandboxProcess.self, from: Data(started.body))
                let list = try JSONDecoder().decode(ProcessList.self, from: Data(try await client.checked("GET", base).body))
                #expect(list.items.contains { $0.pid == process.pid && $0.tag == "sleeper" && $0.running })
                _ = try await client.checked("POST", base + "/\(process.pid)/signal", body: try jsonBytes(["signal": "TERM"]))
                var parser = SSEParser()
                var events: [(String, String)] = []
                _ = try await client.stream("GET", base + "/\(process.pid)/output", accept: "text/event-stream", onHead: { _, _ in }) {
                    events += parser.feed($0).map { ($0.event, $0.data) }
                }
                #expect(events.first.map { SSEParser.chunk($0.1).text } == "up\n")
                let result = try JSONDecoder().decode(ExecResult.self, from: Data(try #require(events.last { $0.0 == "result" }).1.utf8))
                #expect(result.signal == SIGTERM, "\(result)")
                _ = try ProblemBody.of(try await client.send("POST", base + "/99999/signal", body: try jsonBytes(["signal": "BOGUS"])),
                                       status: 400, code: "invalid_request")
            }
        }
    }
}

extension JSONDecoder {
    static var iso: JSONDecoder {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .iso8601
        return d
    }
}
