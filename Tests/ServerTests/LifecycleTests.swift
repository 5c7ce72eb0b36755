import Foundation
import SandboxCommands
import SandboxCore
import SandboxManager
import SandboxServer
import SandboxStore
import SandboxTestSupport
import Testing

/// A sandbox's whole life over HTTP against the real manager and container backend (root + crun).
@Suite(.serialized) struct LifecycleTests {
    static func decode<T: Decodable>(_ type: T.Type, _ reply: APIClient.Reply) throws -> T {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .iso8601
        return try d.decode(T.self, from: Data(reply.body))
    }

    @Test(.realSandboxes) func createExecFilesDelete() async throws {
        try await ServedApp.with { app in
            let (key, keyRecord) = try await app.store.createAPIKey(tenantName: "acme")
            let client = try app.client(key)
            // Plain `curl -d` content type: still JSON.
            let created = try await client.send("POST", "/v1/sandboxes", body: try jsonBytes(["profile": "default", "ttl": "10m", "metadata": ["team": "ml"]]),
                                                contentType: "application/x-www-form-urlencoded")
            #expect(created.status == 201, "\(created.body.text)")
            let sandbox = try Self.decode(SandboxView.self, created)
            #expect(sandbox.id.hasPrefix("sbx-") && sandbox.state == .running && sandbox.profile == "default")
            #expect(sandbox.metadata == ["team": "ml"])
            let expires = try #require(sandbox.expiresAt)
            #expect(abs(expires.timeIntervalSince(sandbox.createdAt) - 600) < 5)
            let base = "/v1/sandboxes/\(sandbox.id)"

            let got = try Self.decode(SandboxView.self, try await client.checked("GET", base))
            #expect(got.id == sandbox.id)
            let listed = try Self.decode(SandboxList.self, try await client.checked("GET", "/v1/sandboxes?state=running&metadata.team=ml"))
            #expect(listed.items.map(\.id) == [sandbox.id])
            let none = try Self.decode(SandboxList.self, try await client.checked("GET", "/v1/sandboxes?metadata.team=web"))
            #expect(none.items.isEmpty)

            let exec = try await client.checked("POST", base + "/exec", body: try jsonBytes(["cmd": ["python3", "-c", "print(6*7)"]]))
            let result = try Self.decode(ExecResult.self, exec)
            #expect(result.outcome == .ok && result.stdout == "42\n" && result.sandboxId == sandbox.id)
            let code = try Self.decode(ExecResult.self, try await client.checked("POST", base + "/exec", body: try jsonBytes([
                "code": "import sys; print(sys.stdin.read().upper(), end='')", "lang": "python", "stdin": "shout",
            ])))
            #expect(code.stdout == "SHOUT")
            let failing = try Self.decode(ExecResult.self, try await client.checked("POST", base + "/exec", body: try jsonBytes(["cmd": ["sh", "-c", "exit 3"]])))
            #expect(failing.outcome == .exitNonzero && failing.exitCode == 3)

            // Files: raw PUT, GET bytes back, multipart PUT, list, mkdir, move, delete.
            let data = Array("name,score\nada,42\n".utf8) + [0, 255, 1]
            let put = try await client.send("PUT", base + "/files?path=/workspace/data.csv", body: data, contentType: "text/csv")
            #expect(put.status == 201, "\(put.body.text)")
            #expect(try await client.checked("GET", base + "/files?path=/workspace/data.csv").body == data)
            let boundary = "XyZ"
            let multipart = Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"m.txt\"\r\nContent-Type: text/plain\r\n\r\nfrom a form\r\n--\(boundary)--\r\n".utf8)
            _ = try await client.checked("PUT", base + "/files?path=/workspace/m.txt", body: multipart, contentType: "multipart/form-data; boundary=\(boundary)")
            #expect(try await client.checked("GET", base + "/files?path=/workspace/m.txt").body.text == "from a form")
            _ = try await client.checked("POST", base + "/files/mkdir", body: try jsonBytes(["path": "/workspace/a/b", "parents": true]))
            _ = try await client.checked("POST", base + "/files/move", body: try jsonBytes(["from": "/workspace/m.txt", "to": "/workspace/a/b/n.txt"]))
            let listing = try Self.decode(FileList.self, try await client.checked("GET", base + "/files/list?path=/workspace"))
            #expect(Set(listing.items.map(\.name)) == ["data.csv", "a"])
            #expect(listing.items.first { $0.name == "data.csv" }?.size == Int64(data.count))
            #expect(listing.items.first { $0.name == "a" }?.type == .directory)
            let viaExec = try Self.decode(ExecResult.self, try await client.checked("POST", base + "/exec", body: try jsonBytes(["cmd": ["cat", "/workspace/a/b/n.txt"]])))
            #expect(viaExec.stdout == "from a form")
            // `?path=` is decoded as clients form-encode it (requests, httpx, URLSearchParams): `+` is a space, `%2B` a plus.
            _ = try await client.checked("PUT", base + "/files?path=/workspace/a+b%2Bc.txt", body: [7])
            let spaced = try Self.decode(ExecResult.self, try await client.checked("POST", base + "/exec", body: try jsonBytes(["cmd": ["ls", "/workspace/a b+c.txt"]])))
            #expect(spaced.stdout == "/workspace/a b+c.txt\n", "\(spaced.stdout) \(spaced.stderr)")
            #expect(try await client.checked("GET", base + "/files?path=/workspace/a%20b%2Bc.txt").body == [7])
            #expect(try await client.send("DELETE", base + "/files?path=/workspace/a+b%2Bc.txt").status == 204)
            #expect(try await client.send("DELETE", base + "/files?path=/workspace/a&recursive=true").status == 204)
            _ = try ProblemBody.of(try await client.send("GET", base + "/files?path=/workspace/a/b/n.txt"), status: 404, code: "not_found")
            _ = try ProblemBody.of(try await client.send("GET", base + "/files"), status: 400, code: "invalid_request")

            let extended = try Self.decode(SandboxView.self, try await client.checked("POST", base + "/timeout", body: try jsonBytes(["ttl": "1h"])))
            #expect(abs(try #require(extended.expiresAt).timeIntervalSinceNow - 3600) < 10)

            let deleted = try Self.decode(SandboxView.self, try await client.checked("DELETE", base))
            #expect(deleted.state == .destroyed)
            #expect(HostHealth.leftovers(of: sandbox.id, stateDirectory: SandboxManager.Configuration.stateDirectory(forData: app.dataDirectory)) == [])
            let after = try await client.send("POST", base + "/exec", body: try jsonBytes(["cmd": ["true"]]))
            #expect(after.status == 404 || after.status == 409, "\(after.body.text)")

            // The tenant's trail has the create and the delete with the key id; the file write is in the sandbox's own trail.
            let audit = try await app.manager.tenantAudit(tenantId: keyRecord.tenantId)  // the recorder flushed first
            #expect(audit.contains { $0.kind == .sandboxCreate && $0.actor == keyRecord.id && $0.sandboxId == sandbox.id && $0.detail["status"] == 201 })
            #expect(audit.contains { $0.kind == .sandboxDelete && $0.sandboxId == sandbox.id && $0.detail["status"] == 200 })
            #expect(!audit.contains { $0.kind == .fileWrite })
            let trail = try await app.manager.auditTrail(tenantId: keyRecord.tenantId, id: sandbox.id)
            #expect(trail.contains { $0.kind == .fileWrite && $0.detail["path"] == "/workspace/data.csv" })
        }
    }

    @Test(.realSandboxes) func uploadOverTheWorkspaceLimitIs413() async throws {
        try await ServedApp.with { app in
            let client = try app.client(try await app.key("acme"))
            let created = try await client.send("POST", "/v1/sandboxes", body: try jsonBytes([
                "profile": ["name": "tiny", "resources": ["workspace": "1M"]],
            ]))
            #expect(created.status == 201, "\(created.body.text)")
            let id = try Self.decode(SandboxView.self, created).id
            let p = try ProblemBody.of(try await client.send("PUT", "/v1/sandboxes/\(id)/files?path=/workspace/big", body: [UInt8](repeating: 7, count: 1_500_000)),
                                       status: 413, code: "limit_exceeded")
            #expect(p.name == "workspace_bytes" && p.limit == 1 << 20 && p.actual == 1_500_000)
            _ = try await client.checked("DELETE", "/v1/sandboxes/\(id)")
        }
    }

    @Test(.realSandboxes) func tenantsNeverSeeEachOther() async throws {
        try await ServedApp.with { app in
            let acme = try app.client(try await app.key("acme"))
            let other = try app.client(try await app.key("globex"))
            let id = try Self.decode(SandboxView.self, try await acme.checked("POST", "/v1/sandboxes", body: Array("{}".utf8))).id
            let base = "/v1/sandboxes/\(id)"
            _ = try ProblemBody.of(try await other.send("GET", base), status: 404, code: "not_found")
            _ = try ProblemBody.of(try await other.send("POST", base + "/exec", body: try jsonBytes(["cmd": ["id"]])), status: 404, code: "not_found")
            _ = try ProblemBody.of(try await other.send("GET", base + "/files?path=/etc/hostname"), status: 404, code: "not_found")
            _ = try ProblemBody.of(try await other.send("DELETE", base), status: 404, code: "not_found")
            #expect(try Self.decode(SandboxList.self, try await other.checked("GET", "/v1/sandboxes")).items.isEmpty)
            // Still alive for its owner.
            #expect(try Self.decode(SandboxView.self, try await acme.checked("GET", base)).state == .running)
            _ = try await acme.checked("DELETE", base)
        }
    }
}
