import Foundation
import SandboxCommands
import SandboxTestSupport
import Templates
import Testing

/// The code interpreter's port (49999) over real HTTP on a real `code-interpreter-v1` sandbox: an
/// execution streams E2B's JSON lines and its context keeps state, each call is an exec of the
/// sandbox, and what the caller may not reach answers as E2B does.
@Suite(.serialized) struct InterpreterServiceTests {
    @Sendable static func templateMissing() -> String? {
        CodeInterpreterTemplate.isCurrent(in: ImageStore.machineCache) ? nil
            : "requires the code-interpreter-v1 template in the machine cache (sandboxer template code-interpreter; make test makes it)"
    }

    static func lines(_ reply: APIClient.Reply) throws -> [[String: Any]] {
        try String(decoding: reply.body, as: UTF8.self).split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    @Test(.realSandboxes, .requires("requires the code-interpreter-v1 template", templateMissing))
    func anExecutionStreamsLinesKeepsStateAndGoesThroughTheManager() async throws {
        try await ServedApp.with { app in
            let key = try await app.key("acme"), other = try await app.key("globex")
            let client = try app.client(key)
            let created = try await client.send("POST", "/v1/sandboxes", body: try jsonBytes(["profile": ["name": "ci", "template": CodeInterpreterTemplate.name, "resources": ["timeout": "180s"]]]))
            #expect(created.status == 201)
            let id = try #require(try JSONSerialization.jsonObject(with: Data(created.body)) as? [String: Any])["id"] as? String ?? ""
            let plane = ["E2b-Sandbox-Id": id, "E2b-Sandbox-Port": "49999", "X-API-KEY": key]

            // The first call starts the default contexts (two kernels): slow on a loaded machine.
            let first = try await client.send("POST", "/execute", body: try jsonBytes(["code": "x = 20"]), headers: plane)
            #expect(first.status == 200 && !first.body.text.contains("\"error\""), "\(first.body.text)")
            let reply = try await client.send("POST", "/execute", body: try jsonBytes(["code": "print('hi')\nx * 2 + 2"]), headers: plane)
            #expect(reply.status == 200)
            let lines = try Self.lines(reply).filter { $0["type"] as? String != "keepalive" }
            #expect(lines.map { $0["type"] as? String } == ["number_of_executions", "stdout", "result", "end_of_execution"])
            #expect(lines[1]["text"] as? String == "hi\n")
            #expect(lines[2]["text"] as? String == "42" && lines[2]["is_main_result"] as? Bool == true)

            let missing = try await client.send("POST", "/execute", body: try jsonBytes(["code": "1", "context_id": "0000-nope"]), headers: plane)
            #expect(missing.status == 404 && String(decoding: missing.body, as: UTF8.self) == "Context 0000-nope not found")
            let both = try await client.send("POST", "/execute", body: try jsonBytes(["code": "1", "context_id": "a", "language": "python"]), headers: plane)
            #expect(both.status == 400)

            var foreign = plane
            foreign["X-API-KEY"] = other
            let refused = try await client.send("POST", "/execute", body: try jsonBytes(["code": "x"]), headers: foreign)
            #expect(refused.status == 502 && String(decoding: refused.body, as: UTF8.self).contains("was not found"))

            // Every call was an exec of the sandbox, counted like any other.
            let record = try await app.manager.get(tenantId: try #require(try await app.store.authenticate(key: key)).tenantId, id: id)
            #expect(record.execCount >= 4)
            _ = try await client.send("DELETE", "/v1/sandboxes/\(id)")
        }
    }
}
