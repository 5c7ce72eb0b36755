import Foundation
import SandboxRuns
import SandboxStore

/// A bounty as the API shows it: never its cases' hidden data (nor their inputs: `case_count`).
struct BountyView: Encodable {
    var id: String
    var title: String
    var profile: String
    var caseCount: Int
    var verifierLang: String
    var createdAt: Date

    init(_ b: BountyRecord) {
        (id, title, profile, caseCount, verifierLang, createdAt) = (b.id, b.title, b.profile.name, b.cases.count, b.verifier.lang, b.createdAt)
    }

    enum CodingKeys: String, CodingKey {
        case id, title, profile, caseCount = "case_count", verifierLang = "verifier_lang", createdAt = "created_at"
    }
}

/// `GET /v1/bounties`.
struct BountyList: Encodable {
    var items: [BountyView]
}

/// A submission as the API shows it.
struct SubmissionView: Encodable {
    var id: String
    var bountyId: String
    var agentId: String
    var agentVersion: String
    var state: String
    var score: Double?
    var reason: String?
    var cases: [CaseView]
    var cpuMs: Double
    var createdAt: Date
    var updatedAt: Date

    struct CaseView: Encodable {
        var index: Int
        var score: Double?
        var reason: String?
        var message: String?
        var runId: String?
        var verifierRunId: String?
        var cpuMs: Double?

        enum CodingKeys: String, CodingKey {
            case index, score, reason, message, runId = "run_id", verifierRunId = "verifier_run_id", cpuMs = "cpu_ms"
        }

        // Unknown values are `null`, not left out.
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(index, forKey: .index)
            try c.encode(score, forKey: .score)
            try c.encode(reason, forKey: .reason)
            try c.encode(message, forKey: .message)
            try c.encode(runId, forKey: .runId)
            try c.encode(verifierRunId, forKey: .verifierRunId)
            try c.encode(cpuMs, forKey: .cpuMs)
        }
    }

    init(_ s: SubmissionRecord) {
        id = s.id
        bountyId = s.bountyId
        agentId = s.agentId
        agentVersion = s.agentDigest
        state = s.state.rawValue
        score = s.score
        reason = s.reason
        cases = s.cases.map { CaseView(index: $0.index, score: $0.score, reason: $0.reason, message: $0.message, runId: $0.runId,
                                       verifierRunId: $0.verifierRunId, cpuMs: $0.cpuMs) }
        cpuMs = s.cpuMs
        createdAt = s.createdAt
        updatedAt = s.updatedAt
    }

    enum CodingKeys: String, CodingKey {
        case id, bountyId = "bounty_id", agentId = "agent_id", agentVersion = "agent_version", state, score, reason, cases
        case cpuMs = "cpu_ms", createdAt = "created_at", updatedAt = "updated_at"
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(bountyId, forKey: .bountyId)
        try c.encode(agentId, forKey: .agentId)
        try c.encode(agentVersion, forKey: .agentVersion)
        try c.encode(state, forKey: .state)
        try c.encode(score, forKey: .score)
        try c.encode(reason, forKey: .reason)
        try c.encode(cases, forKey: .cases)
        try c.encode(cpuMs, forKey: .cpuMs)
        try c.encode(createdAt, forKey: .createdAt)
        try c.encode(updatedAt, forKey: .updatedAt)
    }
}

/// `GET /v1/bounties/{id}/submissions`.
struct SubmissionList: Encodable {
    var items: [SubmissionView]
}

/// `GET /v1/bounties/{id}/leaderboard`.
struct LeaderboardView: Encodable {
    var bountyId: String
    var entries: [LeaderboardEntry]
    enum CodingKeys: String, CodingKey { case bountyId = "bounty_id", entries }
}
