import Crypto
import Foundation
import OneShot
import SandboxCore
@testable import SandboxRuns
import SandboxStore
import SandboxTestSupport
import Testing

/// What the worker records about an attempt when it ends (issue 21's replay records): the lane's
/// engines, and digests of the whole output even when the stored log is capped.
@Suite("Run service: what an attempt ran on", .realSandboxes)
struct RunEnvironmentTests {
    static func sha256(_ bytes: [UInt8]) -> String {
        "sha256:" + SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
    }

    @Test("a run whose output is over the log cap: the log keeps the head, the attempt's environment has the digest and length of all of stdout and stderr, the runtime and its version, and no digest for the host template")
    func digestsOfTheWholeOutput() async throws {
        let root = NSTemporaryDirectory() + "sbx-runenv-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: root + "/state", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let store = try SQLiteStore(directory: root + "/data")
        defer { try? store.close() }
        let runner = OneShotRunner(options: .init(stateDirectory: root + "/state"))
        let service = RunService(store: store, runner: runner, configuration: .init(
            node: "test-node", concurrency: 1, lease: .seconds(120), heartbeat: .milliseconds(200), logCapBytes: 100))
        let task = Task { await service.run() }
        defer { task.cancel() }

        let profile = TestSandbox.profile { $0.template = "host" }
        let submitted = try await store.submitRun(RunRecord(
            id: SandboxSpec.newID(prefix: "run-"), tenantId: "tnt_a",
            spec: RunSpec(profile: profile, argv: ["sh", "-c", "head -c 5000 /dev/zero | tr '\\0' a; echo err >&2"])), maxQueued: 10).run
        var done: RunRecord?
        for _ in 0..<1200 {  // a guard against hangs (60 s), not a speed check
            if let run = try await store.run(id: submitted.id), run.state.isFinal { done = run; break }
            try await Task.sleep(for: .milliseconds(50))
        }
        let run = try #require(done, "the run did not end")
        #expect(run.state == .succeeded, "\(run.reason ?? "")")
        let logged = try await store.runLog(runId: run.id, attempt: 1, afterSeq: 0).flatMap(\.data)
        #expect(logged.count <= 100, "the log is capped: \(logged.count) bytes")

        let environment = try #require(run.attempts.last?.environment)
        let stdout = [UInt8](repeating: UInt8(ascii: "a"), count: 5000)
        #expect(environment.stdoutBytes == 5000 && environment.stdoutDigest == Self.sha256(stdout))
        #expect(environment.stderrBytes == 4 && environment.stderrDigest == Self.sha256(Array("err\n".utf8)))
        #expect(environment.template == "host" && environment.templateDigest == nil && environment.templateDigestNote?.contains("host") == true)
        #expect(environment.isolation == .container && ["crun", "runc"].contains(environment.runtime ?? ""))
        #expect(environment.runtimeVersion?.first?.isNumber == true, "\(environment.runtimeVersion ?? "none")")
        #expect(environment.wasmKit == nil && environment.quickJS == nil && environment.sandboxer == SandboxerVersion.current)
        task.cancel()
        await task.value
    }
}
