import Foundation
import SandboxStore

/// One row of a bounty's leaderboard.
public struct LeaderboardEntry: Sendable, Equatable, Codable {
    /// 1-based, no shared ranks (ties are broken, see ``Leaderboard/rank(_:agentNames:)``).
    public var rank: Int
    /// The agent's name (its id when the agent is gone).
    public var agent: String
    public var agentId: String
    public var digest: String
    public var score: Double
    public var submissionId: String
    /// Total CPU time of the submission's agent runs.
    public var cpuMs: Double
    public var createdAt: Date

    enum CodingKeys: String, CodingKey {
        case rank, agent, agentId = "agent_id", digest, score, submissionId = "submission_id", cpuMs = "cpu_ms", createdAt = "created_at"
    }
}

/// The leaderboard rule: a bounty's best scored submission per agent, best first.
public enum Leaderboard {
    /// Whether `a` ranks above `b`: the higher score; on a tie the earlier submission, then the
    /// lower total CPU time, then the lower id (so the order is total).
    public static func better(_ a: SubmissionRecord, _ b: SubmissionRecord) -> Bool {
        let (sa, sb) = (a.score ?? 0, b.score ?? 0)
        if sa != sb { return sa > sb }
        if a.createdAt != b.createdAt { return a.createdAt < b.createdAt }
        if a.cpuMs != b.cpuMs { return a.cpuMs < b.cpuMs }
        return a.id < b.id
    }

    /// The entries: only `scored` submissions count; one per agent (its best), ordered by ``better(_:_:)``.
    public static func rank(_ submissions: [SubmissionRecord], agentNames: [String: String]) -> [LeaderboardEntry] {
        var best: [String: SubmissionRecord] = [:]
        for s in submissions where s.state == .scored && s.score != nil {
            if let current = best[s.agentId], !better(s, current) { continue }
            best[s.agentId] = s
        }
        return best.values.sorted(by: better).enumerated().map { i, s in
            LeaderboardEntry(rank: i + 1, agent: agentNames[s.agentId] ?? s.agentId, agentId: s.agentId, digest: s.agentDigest,
                             score: s.score ?? 0, submissionId: s.id, cpuMs: s.cpuMs, createdAt: s.createdAt)
        }
    }
}
