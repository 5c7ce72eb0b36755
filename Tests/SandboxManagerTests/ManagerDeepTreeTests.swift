import BackendOCI
import Foundation
import SandboxCore
import SandboxLinux
import SandboxManager
import SandboxTestSupport
import Testing

/// An attack on what the host does with a sandbox's files: a tree nested far deeper than any
/// recursion's stack or PATH_MAX, under a name that is not UTF-8.
@Suite(.serialized) struct ManagerDeepTreeTests {
    /// Python in the sandbox: 4,200 nested directories below a non-UTF-8 name in the workspace,
    /// and as many in the root (the overlay's upper directory).
    static let nest = ExecRequest(argv: ["/usr/bin/python3", "-c", """
        import os
        for top in ('/workspace', '/tmp'):
            os.chdir(top)
            os.mkdir(b'odd\\xff'); os.chdir(b'odd\\xff')
            for _ in range(4200):
                os.mkdir('d'); os.chdir('d')
            open('bottom', 'w').write('x')
        print('nested')
        """])

    @Test("a sandbox that nests directories 4,200 deep cannot crash the server or outlive its delete: its hibernation is refused naming the limit, it keeps running, its delete leaves nothing", .realSandboxes)
    func deepTreeIsRefusedNotFatal() async throws {
        try await ManagerFixture.with { f in
            try await f.manager.start()
            let t = f.tenant.id
            let r = try await f.manager.create(tenantId: t, ManagerFixture.request, actor: "test")
            let made = try await f.manager.exec(tenantId: t, id: r.id, Self.nest, actor: "test", output: nil)
            #expect(made.stdout == "nested\n", "\(made.outcome) \(made.stderr)")

            let refused = await #expect(throws: SandboxError.self) {
                _ = try await f.manager.hibernate(tenantId: t, id: r.id, actor: "test")
            }
            #expect(refused?.code == .limitExceeded, "\(String(describing: refused))")
            #expect(refused?.message.contains("deeper than 4096 levels") == true, "\(String(describing: refused))")
            #expect(try await f.manager.get(tenantId: t, id: r.id).state == .running)
            let alive = try await f.manager.exec(tenantId: t, id: r.id, ExecRequest(argv: ["/bin/echo", "alive"]), actor: "test", output: nil)
            #expect(alive.stdout == "alive\n", "after the refused hibernation: \(alive.outcome) \(alive.stderr)")
            #expect(!SysFile.exists(f.directory + "/hibernated/\(r.id)"), "a refused hibernation leaves no file")

            _ = try await f.manager.destroy(tenantId: t, id: r.id, actor: "test")
            #expect(HostHealth.leftovers(of: r.id, stateDirectory: f.manager.configuration.stateDirectory) == [])
        }
    }
}
