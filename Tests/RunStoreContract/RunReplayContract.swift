import Foundation
import SandboxCore
import SandboxStore
import Testing

/// Replay records in the store (issue 21): what an attempt ran on and a replay's link are part
/// of the run's document, read back whole by every node.
extension RunStoreContract {
    static func replayRecords(_ f: RunStoreFixture) async throws {
        let s = f.store
        let original = try await submit(s, newRun(labels: ["team": "x"]))
        // A run still queued cannot be replayed.
        await expectError(.invalidState) { _ = try RunRules.replay(of: original) }
        _ = try await s.claimRuns(worker: "w", limit: 1, tenantCap: 100, lease: .seconds(30))
        let ran = AttemptEnvironment(
            template: "debian", templateDigest: "sha256:" + String(repeating: "ab", count: 32), isolation: .container, runtime: "crun",
            runtimeVersion: "1.8.1", sandboxer: "0.18.0", stdoutDigest: ContentDigest.of(Array("out\n".utf8)), stdoutBytes: 4)
        let ended = try #require(try await s.finishAttempt(
            runId: original.id, worker: "w", AttemptEnd(outcome: .succeeded, result: ok(), environment: ran), policy: fast))
        #expect(ended.attempts.last?.environment == ran)
        // Another node reads the same document back.
        let other = try await f.second()
        let read = try #require(try await other.run(id: original.id))
        #expect(read.attempts.last?.environment == ran, "\(String(describing: read.attempts.last))")
        #expect(read.state == .succeeded && read.spec == ended.spec)

        let replay = try RunRules.replay(of: read)
        #expect(replay.spec == read.spec && replay.state == .queued && replay.attempts.isEmpty)
        #expect(replay.labels == ["team": "x", "replay_of": original.id])
        #expect(replay.replay == ReplayLink(of: original.id, original: ran))
        let stored = try await submit(s, replay)
        let back = try #require(try await other.run(id: stored.id))
        #expect(back.replay == ReplayLink(of: original.id, original: ran) && back.spec == read.spec)
        // The original is unchanged by its replay.
        let after = try #require(try await other.run(id: original.id))
        #expect(after.replay == nil && after.labels == ["team": "x"] && after.attempts.last?.environment == ran)
    }
}
