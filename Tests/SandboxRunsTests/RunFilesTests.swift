import Foundation
import SandboxCore
@testable import SandboxRuns
import SandboxStore
import SandboxTestSupport
import Testing

/// `RunSpec.files` (an agent version's bundle) in a queued run's `/workspace`, in the container
/// and WASM lanes, and nothing of them left on the host afterwards.
@Suite("Run files in the workspace", .realSandboxes)
struct RunFilesTests {
    static func leftovers() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: NSTemporaryDirectory())) ?? []).filter { $0.hasPrefix("sandboxer-run-files-") }
    }

    @Test("a container run reads its files (nested too) in /workspace; the host copy is removed after")
    func container() async throws {
        try await RunFixture.with { f in
            var spec = RunSpec(profile: TestSandbox.profile(), argv: ["sh", "-c", "cat /workspace/main.sh /workspace/lib/a.txt; ls -a /workspace | tr '\\n' ' '"])
            spec.files = ["main.sh": Array("echo from-main\n".utf8), "lib/a.txt": Array("from-lib\n".utf8)]
            let run = RunRecord(id: SandboxSpec.newID(prefix: "run-"), tenantId: "tnt_files", spec: spec)
            _ = try await f.store.submitRun(run, maxQueued: 100)
            let done = try await f.wait(run.id)
            #expect(done.state == .succeeded, "\(String(describing: done.result))")
            let out = try await f.output(done)
            #expect(out.hasPrefix("echo from-main\nfrom-lib\n"), "\(out)")
            #expect(out.contains("lib") && out.contains("main.sh"))
            #expect(!Self.leftovers().contains { $0.contains(run.id) }, "the host directory of the run's files is removed")
        }
    }

    @Test("a JavaScript run in the WASM lane runs its entrypoint (given as its code) with its files as the workspace, and leaves nothing on the host")
    func wasm() async throws {
        try await RunFixture.with { f in
            let code = Array(#"console.log(readStdin().trim().split(/\s+/).sort().join(" "))"#.utf8)
            var spec = RunSpec(profile: TestSandbox.profile { $0.isolation = .wasm }, argv: [], code: code, codeFileName: "main.js", lang: "js",
                               stdin: Array("3 1 2".utf8))
            spec.files = ["main.js": code, "data/x.txt": Array("x".utf8)]
            let run = RunRecord(id: SandboxSpec.newID(prefix: "run-"), tenantId: "tnt_files", spec: spec)
            _ = try await f.store.submitRun(run, maxQueued: 100)
            let done = try await f.wait(run.id)
            #expect(done.state == .succeeded, "\(String(describing: done.result))")
            #expect(try await f.output(done) == "1 2 3\n")
            #expect(!Self.leftovers().contains { $0.contains(run.id) })
        }
    }

    @Test("a path leaving /workspace is refused before any sandbox starts: the run fails rejected")
    func badPath() async throws {
        try await RunFixture.with { f in
            var spec = RunSpec(profile: TestSandbox.profile(), argv: ["true"])
            spec.files = ["../escape": Array("x".utf8)]
            let run = RunRecord(id: SandboxSpec.newID(prefix: "run-"), tenantId: "tnt_files", spec: spec)
            _ = try await f.store.submitRun(run, maxQueued: 100)
            let done = try await f.wait(run.id)
            #expect(done.state == .failed && done.attempts.last?.outcome == .rejected, "\(done)")
            #expect(done.reason?.contains("..") == true, "\(String(describing: done.reason))")
        }
    }
}
