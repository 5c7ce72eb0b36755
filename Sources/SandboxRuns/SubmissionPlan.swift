import Foundation
import SandboxCore
import SandboxStore

/// How a submission becomes runs, as pure functions: the profile an agent version runs under in
/// a bounty, its agent run per case, its verifier run per case. Every run carries the labels
/// `submission`, `bounty`, `case` and `role` (`agent` | `verifier`) and an idempotency key per
/// submission, case and role, so a second node or a retry queues nothing twice.
public enum SubmissionPlan {
    /// Languages an agent or a verifier may be written in.
    public static let languages = ["python", "js", "sh"]

    /// Why `manifest` cannot run under `profile` (tools or limits beyond it, an isolation weaker
    /// than a profile stronger than a container asks for; an unknown isolation or language), or
    /// the profile it runs under: the bounty's, with the manifest's isolation and its (lower)
    /// limits applied. Under a `container` profile any isolation goes (`wasm` included).
    public static func agentProfile(_ bountyProfile: Profile, manifest: AgentManifest) throws(SandboxError) -> Profile {
        var profile = bountyProfile
        guard languages.contains(manifest.lang) else {
            throw SandboxError(.invalidRequest, "the agent version's manifest has lang '\(manifest.lang)'; one of \(languages.joined(separator: ", "))")
        }
        let isolation: IsolationLevel
        do { isolation = try IsolationLevel.named(manifest.isolation) } catch {
            throw SandboxError(.invalidRequest, "the agent version's manifest: isolation \(error.message)")
        }
        if (isolation == .wasm || isolation == .wasmContainer) && manifest.lang != "js" {
            throw SandboxError(.invalidRequest, "the agent version's manifest asks for isolation \(manifest.isolation) with lang \(manifest.lang); the WASM isolations run JavaScript only")
        }
        // A bounty whose profile asks for more than a container (gVisor, WASM inside a container, a
        // microVM) is not run in less than it asks: the agent's author does not get to weaken it.
        let asked = IsolationPolicy.rank(bountyProfile.isolation)
        if asked >= IsolationPolicy.rank(.gvisor) && IsolationPolicy.rank(isolation) < asked {
            throw SandboxError(.limitExceeded, "the agent version asks for isolation \(manifest.isolation), weaker than the bounty's profile '\(bountyProfile.name)' (\(bountyProfile.isolation.rawValue)); push a version that asks for \(bountyProfile.isolation.rawValue) or a stronger one")
        }
        profile.isolation = isolation
        let extra = manifest.tools.filter { !bountyProfile.tools.contains($0) }
        if !extra.isEmpty {
            throw SandboxError(.limitExceeded, "the agent version asks for tools the bounty's profile '\(bountyProfile.name)' does not allow: \(extra.joined(separator: ", ")) (allowed: \(bountyProfile.tools.isEmpty ? "none" : bountyProfile.tools.joined(separator: ", ")))")
        }
        for (name, text) in manifest.limits.sorted(by: { $0.key < $1.key }) {
            let asked: Limits
            do { asked = try bountyProfile.limits.setting(name, to: text, source: "manifest limits") } catch {
                throw SandboxError(.invalidRequest, "the agent version's manifest: limits.\(name): \(error.message)")
            }
            if let over = asked.exceeding(bountyProfile.limits).first {
                throw SandboxError(.limitExceeded, "the agent version asks for \(over) \(text), more than the bounty's profile '\(bountyProfile.name)' allows (\(bountyProfile.limits.text(of: over) ?? "?")); push a version that asks for at most that")
            }
            profile.limits = try profile.limits.setting(name, to: text, source: "manifest limits")
        }
        return profile
    }

    /// The agent run's spec (without stdin): the version's files in /workspace, the entrypoint
    /// started by its language (`python3 -u`, `sh`, `node`; JavaScript in a WASM isolation runs
    /// as the request's code under QuickJS).
    public static func agentSpec(profile: Profile, version: AgentVersionRecord) throws(SandboxError) -> RunSpec {
        let entry = version.manifest.entrypoint
        if let problem = RunFiles.problem(path: entry) { throw SandboxError(.invalidRequest, "the agent version's entrypoint: \(problem)") }
        guard let entryBytes = version.files[entry] else {
            throw SandboxError(.invalidRequest, "the agent version's entrypoint \(entry) is not one of its files")
        }
        var spec: RunSpec
        switch (version.manifest.lang, profile.isolation) {
        case ("js", .wasm), ("js", .wasmContainer):
            spec = RunSpec(profile: profile, argv: [], code: entryBytes, codeFileName: (entry as NSString).lastPathComponent, lang: "js")
        case ("python", _): spec = RunSpec(profile: profile, argv: ["python3", "-u", "/workspace/" + entry], lang: "python")
        case ("js", _): spec = RunSpec(profile: profile, argv: ["node", "/workspace/" + entry], lang: "js")
        default: spec = RunSpec(profile: profile, argv: ["sh", "/workspace/" + entry], lang: "sh")
        }
        spec.files = version.files
        spec.agentDigest = version.digest
        return spec
    }

    /// The idempotency key of a submission's run for one case and role.
    public static func key(_ submissionId: String, case index: Int, role: String) -> String {
        "\(keyPrefix)\(submissionId):\(index):\(role)"
    }

    /// Keys of this prefix are the submission service's own: a caller's run or replay may not use
    /// one (it would stand in for a submission's agent or verifier run).
    public static let keyPrefix = "bounty-submission:"

    static func labels(_ submission: SubmissionRecord, case index: Int, role: String) -> [String: String] {
        ["submission": submission.id, "bounty": submission.bountyId, "case": String(index), "role": role]
    }

    /// The agent run of case `index`: `spec` with the case's input on stdin (never its hidden data).
    public static func agentRun(_ submission: SubmissionRecord, spec: RunSpec, input: String, case index: Int) -> RunRecord {
        var spec = spec
        spec.stdin = Array(input.utf8)
        return RunRecord(id: SandboxSpec.newID(prefix: "run-"), tenantId: submission.tenantId, spec: spec,
                         labels: labels(submission, case: index, role: "agent"), idempotencyKey: key(submission.id, case: index, role: "agent"))
    }

    /// What a verifier reads on stdin: `{"input", "output", "exit_code", "hidden"}`.
    public static func verifierInput(input: String, output: String, exitCode: Int32?, hidden: String) -> [UInt8] {
        struct Input: Encodable {
            var input: String
            var output: String
            var exit_code: Int32?
            var hidden: String
            func encode(to encoder: any Encoder) throws {
                var c = encoder.container(keyedBy: CodingKeys.self)
                try c.encode(input, forKey: .input)
                try c.encode(output, forKey: .output)
                try c.encode(exit_code, forKey: .exit_code)
                try c.encode(hidden, forKey: .hidden)
            }
            enum CodingKeys: String, CodingKey { case input, output, exit_code, hidden }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array((try? encoder.encode(Input(input: input, output: output, exit_code: exitCode, hidden: hidden))) ?? Data("{}".utf8))
    }

    /// The verifier run of case `index`: the bounty's profile in a sandbox of its own (the
    /// container isolation unless the verifier is JavaScript), the verifier's code by its
    /// language, `stdin` (from ``verifierInput(input:output:exitCode:hidden:)``). Its input limit
    /// is raised to what that stdin needs: it carries the agent's output besides the case.
    public static func verifierRun(_ submission: SubmissionRecord, bounty: BountyRecord, stdin: [UInt8], case index: Int) throws(SandboxError) -> RunRecord {
        var profile = bounty.profile
        let language = try Language(name: bounty.verifier.lang)
        if language != .js && (profile.isolation == .wasm || profile.isolation == .wasmContainer) { profile.isolation = .container }
        profile.limits.inputBytes = max(profile.limits.inputBytes, Int64(stdin.count))
        let request = try ExecRequest.make(cmd: nil, code: Array(bounty.verifier.code.utf8), lang: language.rawValue, isolation: profile.isolation)
        let spec = RunSpec(profile: profile, argv: request.argv, code: request.code, codeFileName: request.codeFileName, lang: language.rawValue,
                           stdin: stdin)
        return RunRecord(id: SandboxSpec.newID(prefix: "run-"), tenantId: submission.tenantId, spec: spec,
                         labels: labels(submission, case: index, role: "verifier"), idempotencyKey: key(submission.id, case: index, role: "verifier"))
    }
}
