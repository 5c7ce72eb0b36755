import Foundation
import SandboxCore
import SandboxManager
import SandboxStore
import SandboxTestSupport
import Testing

/// A sandbox's audit trail as the manager records it, on real container sandboxes.
@Suite(.serialized) struct ManagerAuditTests {
    @Test(.realSandboxes) func execsAndFileOperationsAreRecordedInOrderAndEnvValuesNever() async throws {
        try await ManagerFixture.with { f in
            try await f.manager.start()
            let sbx = try await f.manager.create(tenantId: f.tenant.id, ManagerFixture.request, actor: "key_a")
            let secret = "s3cr3t-\(UUID().uuidString)"
            let ok = try await f.manager.exec(
                tenantId: f.tenant.id, id: sbx.id, ExecRequest(argv: ["sh", "-c", "echo $TOKEN >/dev/null"], env: ["TOKEN": secret]),
                actor: "key_a", output: nil)
            #expect(ok.outcome == .ok)
            try await f.manager.writeFile(tenantId: f.tenant.id, id: sbx.id, path: "/workspace/a.txt", data: Array("hello".utf8), actor: "key_a")
            _ = try await f.manager.readFile(tenantId: f.tenant.id, id: sbx.id, path: "/workspace/a.txt", actor: "key_a")
            let slow = try await f.manager.exec(
                tenantId: f.tenant.id, id: sbx.id, ExecRequest(argv: ["sleep", "30"], timeout: .milliseconds(300)), actor: "key_a", output: nil)
            #expect(slow.outcome == .timeout)
            _ = try await f.manager.destroy(tenantId: f.tenant.id, id: sbx.id, actor: "key_a")

            let trail = try await f.manager.auditTrail(tenantId: f.tenant.id, id: sbx.id)
            #expect(trail.map(\.seq) == (1...Int64(trail.count)).map { $0 })
            #expect(trail.map(\.kind) == [
                .sandboxCreate, .execStart, .execEnd, .fileWrite, .fileRead, .execStart, .execEnd, .limitBreach,
                .sandboxDelete,
            ])
            #expect(trail.allSatisfy { $0.actor == "key_a" && $0.sandboxId == sbx.id })
            let (start, end) = (trail[1], trail[2])
            #expect(start.correlation?.hasPrefix("exec-") == true && end.correlation == start.correlation)
            #expect(start.detail["command"] == "sh -c echo $TOKEN >/dev/null" && start.detail["env_names"] == "TOKEN")
            #expect(end.detail["outcome"] == "ok" && end.detail["exit_code"] == 0)
            #expect(trail[3].detail["path"] == "/workspace/a.txt" && trail[3].detail["bytes"] == 5)
            #expect(trail[4].detail["bytes"] == 5)
            #expect(trail[6].detail["outcome"] == "timeout" && trail[7].detail["limit"] == "timeout")
            #expect(trail[7].correlation == trail[5].correlation)
            #expect(trail[8].detail["reason"] == "deleted by key_a")
            let text = String(decoding: try JSONEncoder().encode(trail), as: UTF8.self)
            #expect(!text.contains(secret), "an env value never reaches the trail")

            let other = try await f.store.ensureTenant(name: "other")
            await #expect(throws: SandboxError.self) { _ = try await f.manager.auditTrail(tenantId: other.id, id: sbx.id) }
        }
    }

    @Test(.realSandboxes) func followingStreamsNewEntriesAndEndsWithTheSandbox() async throws {
        try await ManagerFixture.with { f in
            try await f.manager.start()
            let sbx = try await f.manager.create(tenantId: f.tenant.id, ManagerFixture.request, actor: "key_a")
            let seen = Seen()
            let follower = Task {
                for try await e in f.manager.followAuditTrail(tenantId: f.tenant.id, id: sbx.id) { seen.add(e.kind) }
                seen.finish()
            }
            defer { follower.cancel() }
            try await ManagerLifecycleTests.waitUntil { seen.kinds == [.sandboxCreate] }
            _ = try await f.manager.exec(tenantId: f.tenant.id, id: sbx.id, ExecRequest(argv: ["true"]), actor: "key_a", output: nil)
            try await ManagerLifecycleTests.waitUntil { seen.kinds.count == 3 }
            #expect(seen.kinds == [.sandboxCreate, .execStart, .execEnd])
            _ = try await f.manager.destroy(tenantId: f.tenant.id, id: sbx.id, actor: "key_a")
            // The stream ends by itself once the sandbox is final and its trail drained.
            try await ManagerLifecycleTests.waitUntil { seen.finished }
            #expect(seen.kinds == [.sandboxCreate, .execStart, .execEnd, .sandboxDelete])
        }
    }
}

/// Kinds a follower saw, and whether its stream ended.
final class Seen: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [AuditKind] = []
    private var ended = false
    func add(_ k: AuditKind) { lock.withLock { list.append(k) } }
    func finish() { lock.withLock { ended = true } }
    var kinds: [AuditKind] { lock.withLock { list } }
    var finished: Bool { lock.withLock { ended } }
}
