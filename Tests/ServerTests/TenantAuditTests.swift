import Foundation
import SandboxCommands
import SandboxCore
import SandboxLinux
import SandboxStore
import SandboxTestSupport
import Testing

/// `GET /v1/audit`: the tenant's trail over HTTP — what the operator did from the host (keys,
/// secrets), what the tenant's keys did (sandboxes, network), one tenant never seeing another's.
@Suite("Tenant audit trail over HTTP")
struct TenantAuditTests {
    /// The built `sandboxer` beside the test bundle.
    static let executable = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("sandboxer").path

    /// Runs `sandboxer ARGS` (through `sh`, with `stdin` piped in); the exit status and stdout.
    static func cli(_ args: [String], stdin: String? = nil) async throws -> (status: Int32, out: String) {
        let quoted = ([executable] + args).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        let command = stdin.map { "printf '%s' '\($0)' | \(quoted)" } ?? quoted
        let (t, out, err) = try await ChildProcess.run(["/bin/sh", "-c", command])
        guard case .exited(let code) = t else { return (-1, out + err) }
        return (code, code == 0 ? out : out + err)
    }

    /// One NDJSON line of a trail.
    struct Line: Decodable, Equatable {
        var seq: Int64
        var at: String
        var sandbox_id: String?
        var kind: String
        var actor: String
        var correlation: String?
        var detail: [String: EventValue]
    }

    static func lines(_ body: [UInt8]) throws -> [Line] {
        try body.text.split(separator: "\n").map { try JSONDecoder().decode(Line.self, from: Data($0.utf8)) }
    }

    @Test("key create/revoke and secret set/rm from the CLI are in their tenant's trail, and only there; after/limit page; bad parameters are named")
    func operatorChanges() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.executable), "build the sandboxer executable first (swift build)")
        try await ServedApp.with { app in
            let data = ["--data", app.dataDirectory]
            let keyA = try await Self.cli(["key", "create", "--tenant", "acme"] + data)
            let keyB = try await Self.cli(["key", "create", "--tenant", "globex"] + data)
            let spare = try await Self.cli(["key", "create", "--tenant", "acme"] + data)
            #expect(keyA.status == 0 && keyB.status == 0 && spare.status == 0, "\(keyA.out) \(keyB.out)")
            let (a, b) = (keyA.out.trimmingCharacters(in: .whitespacesAndNewlines), keyB.out.trimmingCharacters(in: .whitespacesAndNewlines))
            let spareKey = spare.out.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(try await Self.cli(["key", "revoke", spareKey] + data).status == 0)
            #expect(try await Self.cli(["secret", "set", "API_TOKEN", "--hosts", "api.example.com", "--tenant", "acme"] + data, stdin: "s3cr3t-value").status == 0)
            #expect(try await Self.cli(["secret", "rm", "API_TOKEN", "--tenant", "acme"] + data).status == 0)

            let reply = try await app.client(a).checked("GET", "/v1/audit")
            #expect(reply.headers["content-type"] == "application/x-ndjson")
            let trail = try Self.lines(reply.body)
            #expect(trail.map(\.kind) == ["key.create", "key.create", "key.revoke", "secret.set", "secret.remove"])
            #expect(trail.map(\.seq) == [1, 2, 3, 4, 5])
            #expect(trail.allSatisfy { $0.actor == "cli" && $0.sandbox_id == nil })
            let spareId = try #require(APIKeyText.keyID(of: spareKey))
            #expect(trail[2].detail["key_id"] == .string(spareId) && trail[2].correlation == spareId)
            #expect(trail[3].detail["name"] == "API_TOKEN" && trail[3].detail["hosts"] == "api.example.com")
            #expect(!reply.body.text.contains("s3cr3t-value") && !reply.body.text.contains(a), "never a value or a key")

            // Tenant isolation: globex sees its own key's creation and nothing of acme's.
            let other = try Self.lines(try await app.client(b).checked("GET", "/v1/audit").body)
            #expect(other.map(\.kind) == ["key.create"] && other.map(\.seq) == [1])

            // Paging as a sandbox's trail pages.
            let page = try Self.lines(try await app.client(a).checked("GET", "/v1/audit?after=2&limit=2").body)
            #expect(page.map(\.seq) == [3, 4])
            #expect(try Self.lines(try await app.client(a).checked("GET", "/v1/audit?after=5").body).isEmpty)

            for (query, field) in [("limit=0", "limit"), ("after=-1", "after"), ("follow=1", "follow"), ("tenant=globex", "tenant")] {
                let bad = try await app.client(a).send("GET", "/v1/audit?" + query)
                #expect(try ProblemBody.of(bad, status: 400, code: "invalid_request").field == field, "\(query)")
            }
            #expect(try await app.client(nil).send("GET", "/v1/audit").status == 401)
        }
    }

    @Test("a sandbox's create, network change (attempted) and delete are in its tenant's trail with the key id; another tenant's attempt is in the attempter's",
          .realSandboxes)
    func sandboxChanges() async throws {
        try await ServedApp.with { app in
            let (a, b) = (try await app.key("acme"), try await app.key("globex"))
            let keyA = try #require(try await app.store.authenticate(key: a))
            let created = try await app.client(a).checked("POST", "/v1/sandboxes", body: try jsonBytes(["ttl": "10m"]))
            let id = try #require((try JSONSerialization.jsonObject(with: Data(created.body)) as? [String: Any])?["id"] as? String)
            // This app runs no egress proxy: the change is refused (409), and the attempt is in the trail all the same.
            let network = try await app.client(a).send("PATCH", "/v1/sandboxes/\(id)/network", body: try jsonBytes(["mode": "deny"]))
            #expect(network.status == 409, "\(network.body.text)")
            let foreign = try await app.client(b).send("DELETE", "/v1/sandboxes/\(id)")
            #expect(foreign.status == 404)
            _ = try await app.client(a).checked("DELETE", "/v1/sandboxes/\(id)")

            let trail = try Self.lines(try await app.client(a).checked("GET", "/v1/audit").body)
            #expect(trail.map(\.kind) == ["sandbox.create", "network.change", "sandbox.delete"])
            #expect(trail.allSatisfy { $0.sandbox_id == id && $0.actor == keyA.id })
            #expect(trail.map { $0.detail["status"] } == [.int(201), .int(409), .int(200)])
            let other = try Self.lines(try await app.client(b).checked("GET", "/v1/audit").body)
            #expect(other.map(\.kind) == ["sandbox.delete"] && other.first?.detail["status"] == 404)
        }
    }
}
