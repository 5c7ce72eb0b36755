import Foundation
import OneShot
import RunStoreContract
import SandboxCore
import SandboxManager
@testable import SandboxRuns
import SandboxStore
import SandboxTestSupport
import Testing

/// A run service on a fresh SQLite store with real one-shot sandboxes; cancelled (stopped) at the end.
struct RunFixture {
    let store: SQLiteStore
    let service: RunService
    let root: String

    static func with(
        concurrency: Int = 2, stateUnder: String = "", retry: RetryPolicy = RetryPolicy(base: .milliseconds(50), max: .milliseconds(200)),
        // Generous: the whole suite shares 2 cores, and a starved heartbeat must not turn into a
        // `worker_lost` attempt here (lease expiry has its own tests in the store contract).
        lease: Duration = .seconds(120), _ body: (RunFixture) async throws -> Void
    ) async throws {
        let root = NSTemporaryDirectory() + "sbx-runs-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: root + "/state", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let store = try SQLiteStore(directory: root + "/data")
        defer { try? store.close() }
        if !stateUnder.isEmpty { FileManager.default.createFile(atPath: root + "/" + stateUnder, contents: Data()) }
        let runner = OneShotRunner(options: .init(stateDirectory: root + "/" + (stateUnder.isEmpty ? "" : stateUnder + "/") + "state"))
        let service = RunService(store: store, runner: runner, configuration: .init(
            node: "test-node", concurrency: concurrency, tenantCap: concurrency, lease: lease, heartbeat: .milliseconds(200), retry: retry))
        let task = Task { await service.run() }
        defer { task.cancel() }
        try await body(RunFixture(store: store, service: service, root: root))
        task.cancel()
        await task.value
    }

    func submit(_ argv: [String], profile: Profile = TestSandbox.profile(), maxAttempts: Int = 3, tenant: String = "tnt_a") async throws -> RunRecord {
        let run = RunRecord(id: SandboxSpec.newID(prefix: "run-"), tenantId: tenant, spec: RunSpec(profile: profile, argv: argv), maxAttempts: maxAttempts)
        return try await store.submitRun(run, maxQueued: 1000).run
    }

    /// Waits (at most `limit`, a guard against hangs, not a speed check) until `id` satisfies `done`.
    func wait(_ id: String, limit: Duration = .seconds(60), until done: (RunRecord) -> Bool = { $0.state.isFinal }) async throws -> RunRecord {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if let run = try await store.run(id: id), done(run) { return run }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw SandboxError(.system, "run \(id) did not get there within \(limit): \(String(describing: try await store.run(id: id)))")
    }

    func output(_ run: RunRecord) async throws -> String {
        let chunks = try await store.runLog(runId: run.id, attempt: run.attempts.count, afterSeq: 0)
        return String(decoding: chunks.filter { $0.stream == .stdout }.flatMap(\.data), as: UTF8.self)
    }
}

@Suite("Run service: queued runs in real sandboxes", .realSandboxes)
struct RunServiceTests {
    @Test("a run is executed once: output stored, result and attempt recorded")
    func succeeds() async throws {
        try await RunFixture.with { f in
            let run = try await f.submit(["sh", "-c", "echo hello; echo oops >&2"])
            let done = try await f.wait(run.id)
            #expect(done.state == .succeeded && done.attempts.count == 1 && done.attempts[0].outcome == .succeeded)
            #expect(done.result?.stdout == "hello\n" && done.result?.stderr == "oops\n")
            #expect(done.attempts[0].sandboxId?.hasPrefix("sbx-") == true && done.startedAt != nil && done.endedAt != nil)
            #expect(try await f.output(done) == "hello\n")
        }
    }

    @Test("exit non-zero is failed and a timeout timed_out: results, never retried")
    func resultsAreFinal() async throws {
        try await RunFixture.with { f in
            let failing = try await f.submit(["sh", "-c", "exit 3"])
            let slow = try await f.submit(["sleep", "30"], profile: TestSandbox.profile { $0.limits.timeout = .milliseconds(500) })
            let a = try await f.wait(failing.id)
            let b = try await f.wait(slow.id)
            #expect(a.state == .failed && a.attempts.count == 1 && a.result?.exitCode == 3 && a.reason == "exit 3")
            #expect(b.state == .timedOut && b.attempts.count == 1 && b.attempts[0].outcome == .timedOut)
        }
    }

    @Test("cancelling a running run kills its sandbox and ends it cancelled")
    func cancelKills() async throws {
        try await RunFixture.with { f in
            let run = try await f.submit(["sleep", "986711"])
            _ = try await f.wait(run.id) { $0.state == .running && !HostHealth.processes(matching: "986711").isEmpty }
            _ = try await f.store.cancelRun(tenantId: "tnt_a", id: run.id)
            let done = try await f.wait(run.id)
            #expect(done.state == .cancelled && done.attempts.last?.outcome == .cancelled)
            #expect(HostHealth.processes(matching: "986711").isEmpty)
            let id = try #require(done.attempts.last?.sandboxId)
            #expect(HostHealth.leftovers(of: id, stateDirectory: f.root + "/state").isEmpty)
        }
    }

    @Test("a running attempt names its sandbox before it ends: the id on record is the live sandbox's")
    func attemptSandboxIsRecordedAtStart() async throws {
        try await RunFixture.with { f in
            let run = try await f.submit(["sleep", "986713"])
            let running = try await f.wait(run.id) { $0.state == .running && !HostHealth.processes(matching: "986713").isEmpty }
            let id = try #require(running.attempts.last?.sandboxId, "the attempt's sandbox is on record while it runs")
            #expect(!HostHealth.leftovers(of: id, stateDirectory: f.root + "/state").isEmpty, "it is the sandbox running now")
            _ = try await f.store.cancelRun(tenantId: "tnt_a", id: run.id)
            let done = try await f.wait(run.id)
            #expect(done.attempts.last?.sandboxId == id)
        }
    }

    @Test("a setup failure is retried with backoff, then the run is dead with every attempt's reason")
    func infrastructureFailuresRetryThenDead() async throws {
        // A broken host: the backend's state directory cannot be made (a file is in the way).
        try await RunFixture.with(stateUnder: "a-file") { f in
            let run = try await f.submit(["true"], maxAttempts: 3)
            let done = try await f.wait(run.id)
            #expect(done.state == .dead, "\(done)")
            #expect(done.attempts.map(\.outcome) == [.setupFailed, .setupFailed, .setupFailed])
            #expect(done.attempts.allSatisfy { $0.reason?.contains("a-file") == true }, "\(done.attempts)")
            #expect(done.reason?.contains("all 3 attempts failed") == true)
            // Backoff: each attempt starts after the previous one ended.
            for (a, b) in zip(done.attempts, done.attempts.dropFirst()) { #expect(b.startedAt >= a.endedAt!) }
        }
    }

    @Test("a request the backend refuses is failed at once (rejected), not retried")
    func rejectedIsFinal() async throws {
        try await RunFixture.with { f in
            var profile = TestSandbox.profile()
            profile.isolation = .microvm
            let run = try await f.submit(["true"], profile: profile)
            let done = try await f.wait(run.id)
            #expect(done.state == .failed && done.attempts.count == 1 && done.attempts[0].outcome == .rejected, "\(done)")
        }
    }

    @Test("stopping the service hands running runs back to the queue; the next service finishes them")
    func stopHandsBack() async throws {
        let root = NSTemporaryDirectory() + "sbx-runs-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: root + "/state", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let store = try SQLiteStore(directory: root + "/data")
        defer { try? store.close() }
        let runner = OneShotRunner(options: .init(stateDirectory: root + "/state"))
        let config = RunService.Configuration(node: "n1", concurrency: 1, lease: .seconds(120), heartbeat: .milliseconds(200),
                                              retry: RetryPolicy(base: .milliseconds(10), max: .milliseconds(20)))
        let run = RunRecord(id: SandboxSpec.newID(prefix: "run-"), tenantId: "t", spec: RunSpec(profile: TestSandbox.profile(), argv: ["sh", "-c", "sleep 1.5; echo finished"]))
        _ = try await store.submitRun(run, maxQueued: 10)
        let first = RunService(store: store, runner: runner, configuration: config)
        let t1 = Task { await first.run() }
        let fixture = RunFixture(store: store, service: first, root: root)
        _ = try await fixture.wait(run.id) { $0.state == .running }
        try await Task.sleep(for: .milliseconds(300))
        t1.cancel()
        await t1.value
        let handedBack = try #require(try await store.run(id: run.id))
        #expect(handedBack.state == .queued && handedBack.attempts.first?.outcome == .workerLost, "\(handedBack)")
        let second = RunService(store: store, runner: runner, configuration: config)
        let t2 = Task { await second.run() }
        defer { t2.cancel() }
        let done = try await fixture.wait(run.id)
        #expect(done.state == .succeeded && done.attempts.count == 2 && done.result?.stdout == "finished\n")
        t2.cancel()
        await t2.value
    }
}
