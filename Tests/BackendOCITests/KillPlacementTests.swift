import Foundation
import SandboxTestSupport
import Testing
@testable import BackendOCI
@testable import SandboxCore
@testable import SandboxLinux

/// A run killed at its deadline goes through the kill loop and the tear-down's cgroup removal:
/// both on the blocking pool, none inside a Swift task (issue 18, item 5).
@Suite("Kill loops of real sandboxes run on the blocking pool", .realSandboxes)
struct KillPlacementTests {
    @Test("a one-shot run killed at its deadline never runs a kill loop or cgroup removal inside a task")
    func oneShotDeadline() async throws {
        let spec = SandboxSpec(profile: TestSandbox.profile { $0.limits.timeout = .seconds(1) })
        let r = try await TestSandbox.backend().run(spec, ExecRequest(argv: ["/bin/sh", "-c", "sleep 986631"]), output: nil)
        #expect(r.outcome == .timeout)
        #expect(!BlockingCheck.recentMisplaced.contains { $0.hasSuffix(spec.id) }, "\(BlockingCheck.recentMisplaced)")
        #expect(HostHealth.leftovers(of: spec.id) == [])
    }

    @Test("a live sandbox's destroy tears it down on the blocking pool")
    func liveDestroy() async throws {
        let backend = try TestSandbox.backend()
        let box = try await backend.create(SandboxSpec(profile: TestSandbox.profile()))
        _ = try await backend.exec(box, ExecRequest(argv: ["sh", "-c", "sleep 986632 &"]), output: nil)
        try await backend.destroy(box)
        #expect(!BlockingCheck.recentMisplaced.contains { $0.hasSuffix(box.id) }, "\(BlockingCheck.recentMisplaced)")
        #expect(HostHealth.leftovers(of: box.id) == [])
    }
}
