import Foundation
import SandboxCore
import SandboxRuns
import SandboxStore
import Testing

/// How a replay's view compares it with its original: output by digest, the environment field by
/// field (a runtime or sandboxer upgrade is a change like a rebuilt template).
@Suite("Replay comparison")
struct ReplayComparisonTests {
    static let original = AttemptEnvironment(
        template: "debian", templateDigest: "sha256:aaaa", isolation: .container, runtime: "crun", runtimeVersion: "1.8",
        sandboxer: "0.18.0", stdoutDigest: ContentDigest.of(Array("42\n".utf8)), stdoutBytes: 3)

    static func replay(state: RunState, ran: AttemptEnvironment?) -> RunRecord {
        var attempt = RunAttempt(number: 1, worker: "w", outcome: state.isFinal ? .succeeded : nil)
        attempt.environment = ran
        var run = RunRecord(id: "run-replay", tenantId: "tnt_a", state: state, spec: RunSpec(profile: .default, argv: ["true"]), attempts: [attempt])
        run.replay = ReplayLink(of: "run-original", original: original)
        return run
    }

    @Test("the same output on the same environment: output_matches true, no changes")
    func same() throws {
        let view = RunView(Self.replay(state: .succeeded, ran: Self.original))
        #expect(view.replayOf == "run-original" && view.outputMatches == true && view.changes == [])
        let json = String(decoding: try RunView.encoder.encode(view), as: UTF8.self)
        #expect(json.contains("\"replay_of\":\"run-original\"") && json.contains("\"output_matches\":true") && json.contains("\"changes\":[]"), "\(json)")
    }

    @Test("other output on an upgraded runtime and sandboxer: output_matches false, both changes named with both values, in order")
    func upgraded() {
        var ran = Self.original
        ran.runtimeVersion = "1.9"
        ran.sandboxer = "0.19.0"
        ran.stdoutDigest = ContentDigest.of(Array("43\n".utf8))
        let view = RunView(Self.replay(state: .succeeded, ran: ran))
        #expect(view.outputMatches == false)
        #expect(view.changes == [EnvironmentChange(field: "runtime_version", original: "1.8", replay: "1.9"),
                                 EnvironmentChange(field: "sandboxer", original: "0.18.0", replay: "0.19.0")])
        #expect(view.changes?.map(\.text) == ["runtime_version: 1.8 → 1.9", "sandboxer: 0.18.0 → 0.19.0"])
    }

    @Test("a replay still running has no comparison yet (null), and an ordinary run has no replay fields at all")
    func notYet() throws {
        let running = RunView(Self.replay(state: .running, ran: nil))
        #expect(running.replayOf == "run-original" && running.outputMatches == nil && running.changes == nil)
        let json = String(decoding: try RunView.encoder.encode(running), as: UTF8.self)
        #expect(json.contains("\"output_matches\":null") && json.contains("\"changes\":null"), "\(json)")
        let plain = RunRecord(id: "run-plain", tenantId: "tnt_a", spec: RunSpec(profile: .default, argv: ["true"]))
        let plainJSON = String(decoding: try RunView.encoder.encode(RunView(plain)), as: UTF8.self)
        #expect(!plainJSON.contains("replay_of") && !plainJSON.contains("output_matches"), "\(plainJSON)")
    }

    @Test("the files digest is canonical: the same files in any insertion order give one digest; a changed byte or name gives another")
    func filesDigest() {
        let a = ContentDigest.of(files: ["main.py": Array("print(1)".utf8), "lib/x.py": [0, 1, 2]])
        var reordered: [String: [UInt8]] = [:]
        reordered["lib/x.py"] = [0, 1, 2]
        reordered["main.py"] = Array("print(1)".utf8)
        #expect(ContentDigest.of(files: reordered) == a)
        #expect(ContentDigest.of(files: ["main.py": Array("print(2)".utf8), "lib/x.py": [0, 1, 2]]) != a)
        #expect(ContentDigest.of(files: ["main.pyl": Array("ib/x.py".utf8)]) != ContentDigest.of(files: ["main.py": Array("lib/x.py".utf8)]))
        #expect(ContentDigest.of([]) == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }
}
