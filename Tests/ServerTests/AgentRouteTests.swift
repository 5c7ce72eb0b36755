import Foundation
import SandboxCommands
import SandboxCore
import SandboxStore
import Templates
import Testing
@testable import SandboxServer

/// `/v1/agents` over real HTTP: names unique per tenant (409), uploads scanned and stored once
/// per digest (201, then 200), blocked versions stored with their findings, an over-limit bundle
/// blocked rather than refused (413 only past 4× the code limit), another tenant's agent absent
/// (404), and the tenant's audit trail; then `sandboxer agent push` of a directory and `agent ls`.
@Suite("Agent registry over HTTP")
struct AgentRouteTests {
    static func object(_ reply: APIClient.Reply) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: Any], "\(reply.body.text)")
    }

    static let main = "import sys\nprint(' '.join(sorted(sys.stdin.read().split(), key=int)))\n"
    static var good: [String: Any] { ["files": ["main.py": main], "manifest": ["lang": "python", "entrypoint": "main.py"]] }

    @Test("create (201), duplicate name (409), bad names (400), list and get per tenant; another tenant's agent is 404")
    func agents() async throws {
        try await ServedApp.with { app in
            let (a, b) = (try app.client(try await app.key("acme")), try app.client(try await app.key("globex")))
            let created = try await a.send("POST", "/v1/agents", body: try jsonBytes(["name": "sorter"]))
            #expect(created.status == 201)
            let agent = try Self.object(created)
            let id = try #require(agent["id"] as? String)
            #expect(id.hasPrefix("agt-") && agent["name"] as? String == "sorter" && agent["created_at"] is String)

            let again = try ProblemBody.of(try await a.send("POST", "/v1/agents", body: try jsonBytes(["name": "sorter"])), status: 409, code: "invalid_state")
            #expect(again.detail.contains("agent name 'sorter' is taken in this tenant (agent \(id))"))
            for bad in ["", String(repeating: "x", count: 65), "has space", "a/b", "ünï"] {
                _ = try ProblemBody.of(try await a.send("POST", "/v1/agents", body: try jsonBytes(["name": bad])), status: 400, code: "invalid_request")
            }
            _ = try ProblemBody.of(try await a.send("POST", "/v1/agents", body: try jsonBytes(["name": "x", "extra": 1])), status: 400, code: "invalid_request")
            #expect(try await b.send("POST", "/v1/agents", body: try jsonBytes(["name": "sorter"])).status == 201, "names are per tenant")

            let listed = try Self.object(try await a.checked("GET", "/v1/agents"))["items"] as? [[String: Any]]
            #expect(listed?.map { $0["id"] as? String } == [id] && listed?.first?["version_count"] as? Int == 0)
            #expect(try Self.object(try await a.checked("GET", "/v1/agents/\(id)"))["versions"] as? [Any] != nil)
            _ = try ProblemBody.of(try await b.send("GET", "/v1/agents/\(id)"), status: 404, code: "not_found")
            _ = try ProblemBody.of(try await b.send("POST", "/v1/agents/\(id)/versions", body: try jsonBytes(Self.good)), status: 404, code: "not_found")
            #expect(try await app.client(nil).send("GET", "/v1/agents").status == 401)
        }
    }

    @Test("an upload is 201 with its digest, the same content again (JSON or tar) 200 with the same body; a blocked one is stored with its findings; views hold no file contents")
    func versions() async throws {
        try await ServedApp.with { app in
            let keyA = try await app.key("acme")
            let (a, b) = (try app.client(keyA), try app.client(try await app.key("globex")))
            let id = try #require(try Self.object(try await a.checked("POST", "/v1/agents", body: try jsonBytes(["name": "sorter"])))["id"] as? String)

            let first = try await a.send("POST", "/v1/agents/\(id)/versions", body: try jsonBytes(Self.good))
            #expect(first.status == 201, "\(first.body.text)")
            let upload = try Self.object(first)
            let digest = try #require(upload["digest"] as? String)
            #expect(AgentDigest.isWellFormed(digest) && upload["status"] as? String == "accepted" && (upload["findings"] as? [Any])?.isEmpty == true)
            let repeated = try await a.send("POST", "/v1/agents/\(id)/versions", body: try jsonBytes(Self.good))
            #expect(repeated.status == 200 && repeated.body == first.body)

            // The same content as a tar: the same version.
            let dir = NSTemporaryDirectory() + "agent-route-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: dir) }
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try Self.main.write(toFile: dir + "/main.py", atomically: true, encoding: .utf8)
            try "lang: python\nentrypoint: main.py\n".write(toFile: dir + "/sandboxer.yaml", atomically: true, encoding: .utf8)
            var tar: [UInt8] = []
            try TarWriter { tar += $0 }.write(directory: dir)
            let asTar = try await a.send("POST", "/v1/agents/\(id)/versions", body: tar, contentType: "application/x-tar")
            let tarDigest = try Self.object(asTar)["digest"] as? String
            #expect(asTar.status == 200 && tarDigest == digest)

            // Blocked: stored with every finding (201), and listed with its status.
            let bad: [String: Any] = ["files": ["main.py": Self.main, "../escape.py": "x"], "manifest": ["lang": "python", "entrypoint": "main.py", "tools": ["http_get"]]]
            let blocked = try await a.send("POST", "/v1/agents/\(id)/versions", body: try jsonBytes(bad))
            #expect(blocked.status == 201)
            let blockedBody = try Self.object(blocked)
            let blockedDigest = try #require(blockedBody["digest"] as? String)
            #expect(blockedBody["status"] as? String == "blocked")
            let findings = try #require(blockedBody["findings"] as? [[String: Any]])
            #expect(findings.map { $0["code"] as? String } == ["path_traversal", "tool_not_allowed"])
            #expect(findings.first?["path"] as? String == "../escape.py" && findings.last?["path"] == nil)

            let view = try Self.object(try await a.checked("GET", "/v1/agents/\(id)/versions/\(digest)"))
            #expect(view["digest"] as? String == digest && view["agent_id"] as? String == id && view["status"] as? String == "accepted")
            #expect(view["profile"] as? String == "bounty" && view["size_bytes"] as? Int == Self.main.utf8.count && view["created_at"] is String)
            #expect((view["manifest"] as? [String: Any])?["entrypoint"] as? String == "main.py")
            #expect((view["files"] as? [[String: Any]])?.map { "\($0["path"]!)=\($0["size"]!)" } == ["main.py=\(Self.main.utf8.count)"])
            let raw = try await a.checked("GET", "/v1/agents/\(id)/versions/\(digest)")
            #expect(!raw.body.text.contains("sys.stdin"), "no file contents in the view")
            let percentEncoded = digest.replacingOccurrences(of: ":", with: "%3A")
            #expect(try await a.send("GET", "/v1/agents/\(id)/versions/\(percentEncoded)").status == 200)
            let blockedView = try Self.object(try await a.checked("GET", "/v1/agents/\(id)/versions/\(blockedDigest)"))
            #expect((blockedView["findings"] as? [Any])?.count == 2 && blockedView["status"] as? String == "blocked")

            let agent = try Self.object(try await a.checked("GET", "/v1/agents/\(id)"))
            #expect((agent["versions"] as? [[String: Any]])?.map { $0["status"] as? String } == ["accepted", "blocked"])
            #expect((agent["versions"] as? [[String: Any]])?.map { $0["digest"] as? String } == [digest, blockedDigest])
            let tenant = try #require(try await app.store.authenticate(key: keyA)).tenantId
            #expect(try await app.store.agentVersion(tenantId: tenant, digest: blockedDigest)?.status == .blocked)

            _ = try ProblemBody.of(try await a.send("GET", "/v1/agents/\(id)/versions/sha256:\(String(repeating: "0", count: 64))"), status: 404, code: "not_found")
            _ = try ProblemBody.of(try await b.send("GET", "/v1/agents/\(id)/versions/\(digest)"), status: 404, code: "not_found")

            // The tenant's trail: the create and each upload, with digest and status.
            let trail = try TenantAuditTests.lines(try await a.checked("GET", "/v1/audit").body)
            #expect(trail.map(\.kind) == ["agent.create", "agent.version", "agent.version", "agent.version", "agent.version"])
            #expect(trail.allSatisfy { $0.correlation == id && $0.sandbox_id == nil })
            #expect(trail.dropFirst().map { $0.detail["status"] } == ["accepted", "accepted", "accepted", "blocked"])
            #expect(trail.dropFirst().map { $0.detail["created"] } == [true, false, false, true])
            #expect(trail.last?.detail["digest"] == .string(blockedDigest))
        }
    }

    @Test("a bundle over the code limit is blocked (bundle_too_large), not refused; past 4x the limit the body is a 413; a profile is named with ?profile")
    func limitsAndProfiles() async throws {
        try await ServedApp.with { app in
            let a = try app.client(try await app.key("acme"))
            let id = try #require(try Self.object(try await a.checked("POST", "/v1/agents", body: try jsonBytes(["name": "big"])))["id"] as? String)
            let over: [String: Any] = ["files": ["main.py": Self.main, "data.txt": String(repeating: "7", count: 700 << 10)],
                                       "manifest": ["lang": "python", "entrypoint": "main.py"]]
            let blocked = try Self.object(try await a.checked("POST", "/v1/agents/\(id)/versions", body: try jsonBytes(over)))
            #expect(blocked["status"] as? String == "blocked")
            #expect(Set((blocked["findings"] as? [[String: Any]])?.compactMap { $0["code"] as? String } ?? []) == ["bundle_too_large", "file_too_large"])

            let huge: [String: Any] = ["files": ["main.py": String(repeating: "7", count: 2200 << 10)], "manifest": ["lang": "python", "entrypoint": "main.py"]]
            let refused = try ProblemBody.of(try await a.send("POST", "/v1/agents/\(id)/versions", body: try jsonBytes(huge)), status: 413, code: "limit_exceeded")
            #expect(refused.name == "agent_upload_bytes" && refused.limit == 4 * (512 << 10))

            let underDefault = try Self.object(try await a.checked("POST", "/v1/agents/\(id)/versions?profile=default", body: try jsonBytes(Self.good)))
            let digest = try #require(underDefault["digest"] as? String)
            #expect(underDefault["status"] as? String == "accepted" && underDefault["profile"] as? String == "default")
            let defaultView = try Self.object(try await a.checked("GET", "/v1/agents/\(id)/versions/\(digest)"))
            #expect(defaultView["profile"] as? String == "default")
            _ = try ProblemBody.of(try await a.send("POST", "/v1/agents/\(id)/versions?profile=nope", body: try jsonBytes(Self.good)), status: 404, code: "not_found")
            _ = try ProblemBody.of(try await a.send("POST", "/v1/agents/\(id)/versions?profile=/etc/passwd", body: try jsonBytes(Self.good)), status: 404, code: "not_found")
            _ = try ProblemBody.of(try await a.send("POST", "/v1/agents/\(id)/versions?tenant=x", body: try jsonBytes(Self.good)), status: 400, code: "invalid_request")
            let wrongType = try await a.send("POST", "/v1/agents/\(id)/versions", body: Array("x".utf8), contentType: "text/plain")
            #expect(wrongType.status == 415)
            _ = try ProblemBody.of(try await a.send("POST", "/v1/agents/\(id)/versions", body: Array("[1]".utf8)), status: 400, code: "invalid_request")
        }
    }

    @Test("sandboxer agent push DIR creates the agent, prints the digest, pushes again to the same agent; a blocked push exits 1 with its findings; agent ls lists it")
    func cliPush() async throws {
        try await ServedApp.with { app in
            let key = try await app.key("acme")
            let dir = NSTemporaryDirectory() + "agent-push-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: dir) }
            try FileManager.default.createDirectory(atPath: dir + "/lib", withIntermediateDirectories: true)
            try Self.main.write(toFile: dir + "/main.py", atomically: true, encoding: .utf8)
            try "N = 3\n".write(toFile: dir + "/lib/n.py", atomically: true, encoding: .utf8)
            try "lang: python\nentrypoint: main.py\nlimits:\n  timeout: 10s\n".write(toFile: dir + "/sandboxer.yaml", atomically: true, encoding: .utf8)

            let pushed = try await CLIClientTests.run(app, key, ["agent", "push", dir, "--name", "sorter"])
            #expect(pushed.status == 0, "\(pushed.err) \(String(describing: pushed.problem))")
            let digest = pushed.out.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(AgentDigest.isWellFormed(digest) && pushed.err.contains("accepted"))
            let expected = try AgentScan(profile: .bounty).scan(.json(try jsonBytes([
                "files": ["main.py": Self.main, "lib/n.py": "N = 3\n"],
                "manifest": ["lang": "python", "entrypoint": "main.py", "limits": ["timeout": "10s"]]]))).digest
            #expect(digest == expected, "a pushed directory has the digest of the same content as JSON")

            let again = try await CLIClientTests.run(app, key, ["agent", "push", dir, "--name", "sorter"])
            #expect(again.status == 0 && again.out.trimmingCharacters(in: .whitespacesAndNewlines) == digest && again.err.contains("already pushed"))

            try FileManager.default.createSymbolicLink(atPath: dir + "/secret", withDestinationPath: "/etc/shadow")
            let blocked = try await CLIClientTests.run(app, key, ["agent", "push", dir, "--name", "sorter"])
            #expect(blocked.status == 1)
            #expect(blocked.err.contains("blocked") && blocked.err.contains("link:") && blocked.err.contains("[secret]"), "\(blocked.err)")

            let listed = try await CLIClientTests.run(app, key, ["agent", "ls"])
            let row = try #require(listed.out.split(separator: "\n").last.map(String.init))
            #expect(listed.out.hasPrefix("NAME") && row.hasPrefix("sorter") && row.contains("agt-") && row.hasSuffix("2"), "\(listed.out)")
            let json = try await CLIClientTests.run(app, key, ["agent", "ls", "--json"])
            #expect(json.out.contains("\"version_count\":2"))
        }
    }
}
