import Foundation
@testable import OneShot
import SandboxCore
@testable import SandboxManager
import SandboxTestSupport
import Testing

/// The switch from the setup phase to the run phase ends what the setup command left running (a
/// background process from setup kept a working tunnel into a `deny` run phase).
@Suite(.serialized) struct SetupPhaseTests {
    static let leftBehind = ["/bin/sh", "-c", "setsid sleep 3600 </dev/null >/dev/null 2>&1 & echo started"]
    /// Every process's command line in the sandbox.
    static let processes = ExecRequest(argv: ["/bin/sh", "-c", "for p in /proc/[0-9]*; do tr '\\0' ' ' <$p/cmdline 2>/dev/null; echo; done"])

    func request(keep: Bool) -> CreateSandboxRequest {
        var request = ManagerFixture.request
        if case .inline(var p) = request.profile {
            p.phases.keepSetupProcesses = keep
            request.profile = .inline(p)
        }
        request.setup = ExecRequest(argv: Self.leftBehind)
        return request
    }

    @Test(.realSandboxes) func aProcessTheSetupCommandLeftRunningIsEndedBeforeTheRunPhase() async throws {
        try await ManagerFixture.with { f in
            try await f.manager.start()
            let sbx = try await f.manager.create(tenantId: f.tenant.id, request(keep: false), actor: "key_a")
            let ps = try await f.manager.exec(tenantId: f.tenant.id, id: sbx.id, Self.processes, actor: "key_a", output: nil)
            #expect(ps.outcome == .ok)
            #expect(!ps.stdout.contains("sleep 3600"), "\(ps.stdout)")
            let trail = try await f.manager.auditTrail(tenantId: f.tenant.id, id: sbx.id)
            #expect(trail.contains { $0.kind == .setupProcessesEnded })
        }
    }

    @Test(.realSandboxes) func theProfileMayKeepThem() async throws {
        try await ManagerFixture.with { f in
            try await f.manager.start()
            let sbx = try await f.manager.create(tenantId: f.tenant.id, request(keep: true), actor: "key_a")
            let ps = try await f.manager.exec(tenantId: f.tenant.id, id: sbx.id, Self.processes, actor: "key_a", output: nil)
            #expect(ps.stdout.contains("sleep 3600"), "\(ps.stdout)")
        }
    }

    @Test(.realSandboxes) func aOneShotRunWithSetupEndsWhatSetupLeftRunning() async throws {
        for keep in [false, true] {
            let profile = TestSandbox.profile { $0.phases.keepSetupProcesses = keep }
            let run = PhasedRun(backend: try TestSandbox.backend(), egress: nil)
            let r = try await run.run(SandboxSpec(profile: profile), setup: ExecRequest(argv: Self.leftBehind), request: Self.processes, output: nil)
            #expect(r.outcome == .ok, "\(r.stderr)")
            #expect(r.stdout.contains("sleep 3600") == keep, "keep_processes \(keep): \(r.stdout)")
        }
    }

    @Test func keepProcessesIsAProfileField() throws {
        let p = try ProfileLoader().parse("phases:\n  setup:\n    keep_processes: true\n", defaultName: "p")
        #expect(p.phases.keepSetupProcesses)
        #expect(p.network(for: .setup) == p.network)
        let again = try JSONDecoder().decode(Profile.self, from: JSONEncoder().encode(p))
        #expect(again.phases.keepSetupProcesses && again.network(for: .setup) == p.network)
        #expect(throws: SandboxError.self) { try ProfileLoader().parse("phases:\n  run:\n    keep_processes: true\n", defaultName: "p") }
    }
}
