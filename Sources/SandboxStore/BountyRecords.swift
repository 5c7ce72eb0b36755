import Foundation
import SandboxCore

/// One case of a bounty: what the agent reads on stdin, and data only the verifier sees.
public struct BountyCase: Sendable, Equatable, Codable {
    public var input: String
    /// Never enters the agent's sandbox: handed to the verifier only.
    public var hidden: String

    public init(input: String, hidden: String = "") {
        self.input = input
        self.hidden = hidden
    }
}

/// The bounty's scorer: code run in its own sandbox per case (stdin: one JSON object with the
/// case input, the agent's output and exit code, and the hidden data; stdout: `{"score","message"}`).
public struct VerifierSpec: Sendable, Equatable, Codable {
    /// `python` (the contract), `js` or `sh`.
    public var lang: String
    public var code: String

    public init(lang: String = "python", code: String) {
        self.lang = lang
        self.code = code
    }
}

/// A bounty: cases scored by a verifier, agents run under `profile` (default `bounty`).
public struct BountyRecord: Sendable, Equatable, Codable {
    /// `bnt-` + 12 hex digits.
    public var id: String
    public var tenantId: String
    public var title: String
    /// The profile agent runs use, resolved at create time (every limit as applied).
    public var profile: Profile
    public var cases: [BountyCase]
    public var verifier: VerifierSpec
    public var createdAt: Date

    public init(id: String = SandboxSpec.newID(prefix: "bnt-"), tenantId: String, title: String, profile: Profile, cases: [BountyCase],
                verifier: VerifierSpec, createdAt: Date = Date()) {
        self.id = id
        self.tenantId = tenantId
        self.title = title
        self.profile = profile
        self.cases = cases
        self.verifier = verifier
        self.createdAt = createdAt
    }

    enum CodingKeys: String, CodingKey { case id, tenantId = "tenant_id", title, profile, cases, verifier, createdAt = "created_at" }
}

/// Lifecycle of a submission: `queued → running → scored | failed`.
public enum SubmissionState: String, Sendable, Codable, CaseIterable {
    case queued, running, scored, failed

    public var isFinal: Bool { self == .scored || self == .failed }
}

/// One case of a submission: its agent run, its verifier run, and the case's score once known.
public struct SubmissionCase: Sendable, Equatable, Codable {
    public var index: Int
    /// The agent's run through the queue (nil until submitted).
    public var runId: String?
    /// The verifier's run (nil until the agent run ended and the verifier was queued).
    public var verifierRunId: String?
    /// In [0, 1]; nil while not scored.
    public var score: Double?
    /// Why it scored what it did, as a code: `verified` (the verifier scored it; its message is in
    /// `message`), `verifier_error`, or how the agent run ended (`timed_out`, `oom`, `crashed`, …).
    public var reason: String?
    /// CPU time of the agent run.
    public var cpuMs: Double?
    /// The detail behind `reason` when it is a code (`verifier_error`: what the verifier printed
    /// or how it ended; `timed_out`: the run's reason).
    public var message: String?

    public init(index: Int, runId: String? = nil, verifierRunId: String? = nil, score: Double? = nil, reason: String? = nil, cpuMs: Double? = nil,
                message: String? = nil) {
        self.index = index
        self.runId = runId
        self.verifierRunId = verifierRunId
        self.score = score
        self.reason = reason
        self.cpuMs = cpuMs
        self.message = message
    }

    enum CodingKeys: String, CodingKey {
        case index, runId = "run_id", verifierRunId = "verifier_run_id", score, reason, cpuMs = "cpu_ms", message
    }
}

/// An agent version submitted to a bounty.
public struct SubmissionRecord: Sendable, Equatable, Codable {
    /// `sub-` + 12 hex digits.
    public var id: String
    public var tenantId: String
    public var bountyId: String
    public var agentId: String
    /// The agent version's digest (`sha256:…`).
    public var agentDigest: String
    public var state: SubmissionState
    /// Mean of the case scores once scored.
    public var score: Double?
    public var cases: [SubmissionCase]
    /// Why it failed (state `failed`).
    public var reason: String?
    public var createdAt: Date
    public var updatedAt: Date

    public init(id: String = SandboxSpec.newID(prefix: "sub-"), tenantId: String, bountyId: String, agentId: String, agentDigest: String,
                state: SubmissionState = .queued, score: Double? = nil, cases: [SubmissionCase], reason: String? = nil,
                createdAt: Date = Date(), updatedAt: Date? = nil) {
        self.id = id
        self.tenantId = tenantId
        self.bountyId = bountyId
        self.agentId = agentId
        self.agentDigest = agentDigest
        self.state = state
        self.score = score
        self.cases = cases
        self.reason = reason
        self.createdAt = createdAt
        self.updatedAt = updatedAt ?? createdAt
    }

    /// Total CPU time of its agent runs.
    public var cpuMs: Double { cases.reduce(0) { $0 + ($1.cpuMs ?? 0) } }

    enum CodingKeys: String, CodingKey {
        case id, tenantId = "tenant_id", bountyId = "bounty_id", agentId = "agent_id", agentDigest = "agent_digest", state, score, cases
        case reason, createdAt = "created_at", updatedAt = "updated_at"
    }
}

/// Bounties and submissions, kept by both engines (SQLite and PostgreSQL). Every lookup takes
/// the tenant: another tenant's bounty or submission does not exist.
public protocol BountyStore: Sendable {
    func createBounty(_ bounty: BountyRecord) async throws -> BountyRecord
    func bounty(tenantId: String, id: String) async throws -> BountyRecord?
    /// The tenant's bounties, oldest first (at most `limit`).
    func bounties(tenantId: String, limit: Int) async throws -> [BountyRecord]
    func createSubmission(_ submission: SubmissionRecord) async throws -> SubmissionRecord
    func submission(tenantId: String, id: String) async throws -> SubmissionRecord?
    /// Replaces a submission when it still has `expected`'s `updatedAt` (another node may have
    /// advanced it meanwhile); returns false and changes nothing otherwise.
    func updateSubmission(_ submission: SubmissionRecord, expected: Date) async throws -> Bool
    /// A bounty's submissions, oldest first.
    func submissions(tenantId: String, bountyId: String) async throws -> [SubmissionRecord]
    /// Submissions of every tenant not yet scored or failed (a node advances them after a restart).
    func unfinishedSubmissions(limit: Int) async throws -> [SubmissionRecord]
}
