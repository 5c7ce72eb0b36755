import Foundation
import SandboxCore
import SandboxRuns
import SandboxStore

/// `POST /v1/bounties`: `{"title", "profile" (a profile name; `bounty` when left out), "cases":
/// [{"input", "hidden"}], "verifier": {"lang", "code"}}`. Sizes are checked against the profile
/// in ``record(tenantId:profiles:)``.
struct BountyCreateBody: Decodable {
    /// The most cases a bounty may have.
    static let maxCases = 1000
    /// The most bytes of a create body (its cases' inputs and hidden data together).
    static let bodyLimit: Int64 = 32 << 20

    var title: String
    var profile: String
    var cases: [BountyCase]
    var verifier: VerifierSpec

    struct CaseBody: Decodable {
        var input: String
        var hidden: String
        init(from decoder: any Decoder) throws {
            let at = decoder.codingPath.last?.intValue.map { "cases[\($0)]." } ?? "cases[]."
            var f = try BodyFields(decoder, prefix: at)
            guard let input = try f.string("input") else { throw Problem.invalid(at + "input", "\(at)input is required: the text the agent reads on stdin") }
            self.input = input
            hidden = try f.string("hidden") ?? ""
            try f.finish()
        }
    }

    init(from decoder: any Decoder) throws {
        var f = try BodyFields(decoder)
        guard let title = try f.string("title"), !title.isEmpty, title.count <= 200 else {
            throw Problem.invalid("title", "title is required: 1 to 200 characters")
        }
        self.title = title
        profile = try f.string("profile") ?? Profile.bounty.name
        guard let cases = try f.value("cases", [CaseBody].self, "must be an array of {\"input\": …, \"hidden\": …} objects"), !cases.isEmpty else {
            throw Problem.invalid("cases", "cases is required: at least one {\"input\": …, \"hidden\": …}")
        }
        guard cases.count <= Self.maxCases else {
            throw Problem.invalid("cases", "cases: at most \(Self.maxCases), got \(cases.count); split the bounty")
        }
        self.cases = cases.map { BountyCase(input: $0.input, hidden: $0.hidden) }
        guard var v = try f.object("verifier") else {
            throw Problem.invalid("verifier", "verifier is required: {\"lang\": \"python\", \"code\": \"…\"}")
        }
        let lang = try v.string("lang") ?? "python"
        guard SubmissionPlan.languages.contains(lang) else {
            throw Problem.invalid("verifier.lang", "verifier.lang: unknown language '\(lang.prefix(50))'; one of \(SubmissionPlan.languages.joined(separator: ", "))")
        }
        guard let code = try v.string("code"), !code.isEmpty else {
            throw Problem.invalid("verifier.code", "verifier.code is required: a program that reads {\"input\", \"output\", \"exit_code\", \"hidden\"} on stdin and prints {\"score\": 0..1, \"message\": \"…\"}")
        }
        try v.finish()
        verifier = VerifierSpec(lang: lang, code: code)
        try f.finish()
    }

    /// The bounty to store: the profile resolved (a known name, never a path), every case's input
    /// and hidden data within its input limit, the verifier within its code limit.
    func record(tenantId: String, profiles: ProfileLoader) throws -> BountyRecord {
        guard !profiles.isPath(profile), profiles.knownNames().contains(profile) else {
            throw Problem.invalid("profile", "profile: unknown profile '\(profile.prefix(100))'; known: \(profiles.knownNames().joined(separator: ", "))")
        }
        let resolved = try profiles.load(profile)
        let limits = resolved.limits
        for (i, c) in cases.enumerated() {
            for (field, text) in [("input", c.input), ("hidden", c.hidden)] where Int64(text.utf8.count) > limits.inputBytes {
                throw SandboxError(.limitExceeded, "cases[\(i)].\(field) is \(text.utf8.count) bytes, over the profile '\(resolved.name)' input limit of \(ByteSize.format(limits.inputBytes)); shorten it or use a profile with a larger input limit",
                                   limit: .init(name: "input_bytes", limit: limits.inputBytes, actual: Int64(text.utf8.count)), field: "cases[\(i)].\(field)")
            }
        }
        let codeBytes = Int64(verifier.code.utf8.count)
        if codeBytes > limits.codeBytes {
            throw SandboxError(.limitExceeded, "verifier.code is \(codeBytes) bytes, over the profile '\(resolved.name)' code limit of \(ByteSize.format(limits.codeBytes))",
                               limit: .init(name: "code_bytes", limit: limits.codeBytes, actual: codeBytes), field: "verifier.code")
        }
        return BountyRecord(tenantId: tenantId, title: title, profile: resolved, cases: cases, verifier: verifier)
    }
}

/// `POST /v1/bounties/{id}/submissions`: `{"agent_version": "sha256:…"}`, and `agent` (an agent
/// id) when the same content was pushed to more than one of the tenant's agents.
struct SubmissionCreateBody: Decodable {
    var agentVersion: String
    var agentId: String?

    init(from decoder: any Decoder) throws {
        var f = try BodyFields(decoder)
        guard let digest = try f.string("agent_version"), digest.hasPrefix("sha256:"), digest.utf8.count <= 100 else {
            throw Problem.invalid("agent_version", "agent_version is required: a version's digest (sha256:…), as `sandboxer agent push` prints it")
        }
        agentVersion = digest
        agentId = try f.string("agent")
        try f.finish()
    }
}
