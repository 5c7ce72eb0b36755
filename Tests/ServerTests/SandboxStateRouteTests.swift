import Foundation
import SandboxCommands
import SandboxCore
import SandboxLinux
import SandboxServer
import SandboxStore
import SandboxTestSupport
import Testing

/// `POST /v1/sandboxes/{id}/pause|resume|hibernate` over HTTP (issue 19).
@Suite(.serialized) struct SandboxStateRouteTests {
    @Test("pause, resume and hibernate answer the sandbox in its new state, 200 again when it is already there; list filters and disk_bytes know the states; another tenant gets 404", .realSandboxes)
    func stateRoutes() async throws {
        try await ServedApp.with { app in
            let client = try app.client(try await app.key("acme"))
            let created = try LifecycleTests.decode(SandboxView.self, try await client.checked("POST", "/v1/sandboxes", body: try jsonBytes(["profile": "default"])))
            let base = "/v1/sandboxes/\(created.id)"
            #expect(try await client.checked("PUT", base + "/files?path=/workspace/f.txt", body: Array("x".utf8)).status == 201)
            #expect(try LifecycleTests.decode(SandboxView.self, try await client.checked("GET", base)).diskBytes ?? 0 > 0)

            for _ in 0..<2 {
                let paused = try await client.send("POST", base + "/pause")
                #expect(paused.status == 200, "\(paused.body.text)")
                #expect(try LifecycleTests.decode(SandboxView.self, paused).state == .paused)
            }
            let listed = try LifecycleTests.decode(SandboxList.self, try await client.checked("GET", "/v1/sandboxes?state=paused"))
            #expect(listed.items.map(\.id) == [created.id])
            let bad = try ProblemBody.of(try await client.send("GET", "/v1/sandboxes?state=asleep"), status: 400, code: "invalid_request")
            #expect(bad.detail.contains("paused") && bad.detail.contains("hibernated"))

            let hibernated = try LifecycleTests.decode(SandboxView.self, try await client.checked("POST", base + "/hibernate"))
            #expect(hibernated.state == .hibernated && (hibernated.diskBytes ?? 0) > 0)
            #expect(try LifecycleTests.decode(SandboxView.self, try await client.checked("POST", base + "/hibernate")).state == .hibernated)
            _ = try ProblemBody.of(try await client.send("POST", base + "/pause"), status: 409, code: "invalid_state")

            let other = try app.client(try await app.key("rival"))
            _ = try ProblemBody.of(try await other.send("POST", base + "/resume"), status: 404, code: "not_found")

            // A file read wakes it, and the file is there.
            #expect(try await client.checked("GET", base + "/files?path=/workspace/f.txt").body == Array("x".utf8))
            #expect(try LifecycleTests.decode(SandboxView.self, try await client.checked("GET", base)).state == .running)
            #expect(try LifecycleTests.decode(SandboxView.self, try await client.checked("POST", base + "/resume")).state == .running)
            _ = try await client.checked("DELETE", base)
            #expect(!SysFile.exists(app.dataDirectory + "/hibernated/\(created.id)"))
        }
    }
}
