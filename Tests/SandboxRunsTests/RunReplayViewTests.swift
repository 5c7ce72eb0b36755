import Foundation
import SandboxCore
import SandboxRuns
import SandboxStore
import Testing

/// `GET /v1/runs/{id}/record` of an agent run (issue 21): the agent's digest and files as digests,
/// and every environment name of the run and its profile, with no value anywhere in the JSON.
@Suite("Replay record view")
struct RunReplayViewTests {
    @Test("an agent run's record: agent_digest, files_digest, env names of the run, the profile's env and secrets; no env value in the JSON; a run that never ran says why it has no digest")
    func agentRunRecord() throws {
        var profile = Profile.default
        profile.env = ["PROFILE_PASSWORD": "hunter2-profile-value"]
        profile.secrets = ["OPENAI_KEY"]
        var spec = RunSpec(profile: profile, argv: ["python3", "-u", "main.py"], stdin: Array("5 4".utf8), env: ["RUN_TOKEN": "tok-run-value-77"])
        let files = ["main.py": Array("print(input())".utf8), "util/sort.py": Array("def f(): pass".utf8)]
        spec.files = files
        spec.agentDigest = "sha256:" + String(repeating: "c", count: 64)
        let run = RunRecord(id: "run-agent", tenantId: "tnt_a", spec: spec, labels: ["role": "agent"])
        let view = RunReplayView(run)
        #expect(view.agentDigest == spec.agentDigest && view.filesDigest == ContentDigest.of(files: files))
        #expect(view.envNames == ["OPENAI_KEY", "PROFILE_PASSWORD", "RUN_TOKEN"])
        #expect(view.inputDigest == ContentDigest.of(Array("5 4".utf8)) && view.codeDigest == nil)
        #expect(view.template.name == "debian" && view.template.digest == nil && view.template.digestNote?.contains("not run") == true)
        #expect(view.output == nil && view.outcome == nil && view.replayOf == nil)
        let json = String(decoding: try RunView.encoder.encode(view), as: UTF8.self)
        for value in ["hunter2-profile-value", "tok-run-value-77"] {
            #expect(!json.contains(value), "the record shows \(value): \(json)")
        }
        #expect(json.contains("\"PROFILE_PASSWORD\":\"\(RunReplayView.hiddenValue)\""), "\(json)")
        #expect(json.contains("\"agent_digest\":\"sha256:ccc") && json.contains("\"timeout\":\"30s\""), "\(json)")
    }
}
