import Foundation
import SandboxCore

/// Lifecycle of a queued run: `queued → running → succeeded | failed | timed_out | cancelled | dead`.
///
/// A running run whose attempt failed for an infrastructure reason goes back to `queued` (with a
/// backoff) until its attempts are spent, then `dead`. A finished run can be retried (`→ queued`).
public enum RunState: String, Sendable, Codable, CaseIterable {
    case queued, running, succeeded, failed
    case timedOut = "timed_out"
    case cancelled, dead

    public var isFinal: Bool { self != .queued && self != .running }

    /// Whether the run state machine allows going from `self` to `next`: queued → running (a
    /// claim) or cancelled; running → queued (a retry after a failed attempt) or any final state;
    /// a final state → queued (`retry`).
    public func canMove(to next: RunState) -> Bool {
        switch (self, next) {
        case (.queued, .running), (.queued, .cancelled): true
        case (.running, .queued): true
        case (.running, let n) where n.isFinal: true
        case (let s, .queued) where s.isFinal: true
        default: false
        }
    }
}

/// How one attempt of a run ended. The first five are results of the program (final, never
/// retried); the rest are infrastructure failures (retried while attempts remain).
public enum AttemptOutcome: String, Sendable, Codable, CaseIterable {
    /// Exit 0.
    case succeeded
    /// Non-zero exit, out of memory, a limit of the profile: the program's own failure.
    case failed
    case timedOut = "timed_out"
    case cancelled
    /// Refused before it started for a reason retrying cannot fix (a limit, a bad profile).
    case rejected
    /// The sandbox could not be set up (`setup_failed`, a host error).
    case setupFailed = "setup_failed"
    /// The worker holding the run stopped renewing its lease (crashed, killed, partitioned).
    case workerLost = "worker_lost"
    /// The sandbox's agent died or stopped answering mid-run.
    case agentLost = "agent_lost"

    /// Whether another attempt may fix it.
    public var isInfrastructure: Bool { self == .setupFailed || self == .workerLost || self == .agentLost }

    /// The run's final state for a result outcome (nil for infrastructure outcomes).
    public var finalState: RunState? {
        switch self {
        case .succeeded: return .succeeded
        case .failed, .rejected: return .failed
        case .timedOut: return .timedOut
        case .cancelled: return .cancelled
        case .setupFailed, .workerLost, .agentLost: return nil
        }
    }
}

/// One attempt at a run: which worker, when, how it ended and why.
public struct RunAttempt: Sendable, Equatable, Codable {
    /// 1-based.
    public var number: Int
    public var worker: String
    public var startedAt: Date
    public var endedAt: Date?
    /// nil while the attempt runs.
    public var outcome: AttemptOutcome?
    public var reason: String?
    /// The sandbox the attempt runs in: named by the claim (the id its one-shot sandbox gets), or
    /// the warm-pool sandbox it took (``RunStore/setAttemptSandbox(runId:worker:sandboxId:)``).
    public var sandboxId: String?
    /// What the attempt ran on and the digests of its output (set when it ended with a result).
    public var environment: AttemptEnvironment?

    public init(number: Int, worker: String, startedAt: Date = Date(), endedAt: Date? = nil, outcome: AttemptOutcome? = nil,
                reason: String? = nil, sandboxId: String? = nil) {
        self.number = number
        self.worker = worker
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.outcome = outcome
        self.reason = reason
        self.sandboxId = sandboxId
    }

    enum CodingKeys: String, CodingKey {
        case number, worker, startedAt = "started_at", endedAt = "ended_at", outcome, reason, sandboxId = "sandbox_id", environment
    }
}

/// What a run executes, resolved at submit time so any worker of the fleet can run it as is.
public struct RunSpec: Sendable, Equatable, Codable {
    /// The profile with every setting (isolation override applied).
    public var profile: Profile
    /// The command; for `code` + `lang` the language's argv (`python3 -u /code/main.py`).
    public var argv: [String]
    /// Code written to `/code/<codeFileName>` before the command runs.
    public var code: [UInt8]?
    public var codeFileName: String?
    /// The language as submitted (`python`, `js`, …), for display.
    public var lang: String?
    public var stdin: [UInt8]?
    public var env: [String: String]
    /// Working directory (nil: `/workspace`).
    public var cwd: String?
    /// A command run first in the same sandbox under the profile's `setup` phase network.
    public var setup: [String]?
    /// Files placed in `/workspace` before the command runs (relative path → content): an agent
    /// version's bundle (issue 21). nil for ordinary runs.
    public var files: [String: [UInt8]]?
    /// The agent version (`sha256:…`) this run executes, for agent runs of a submission.
    public var agentDigest: String?

    public init(profile: Profile, argv: [String], code: [UInt8]? = nil, codeFileName: String? = nil, lang: String? = nil,
                stdin: [UInt8]? = nil, env: [String: String] = [:], cwd: String? = nil) {
        self.profile = profile
        self.argv = argv
        self.code = code
        self.codeFileName = codeFileName
        self.lang = lang
        self.stdin = stdin
        self.env = env
        self.cwd = cwd
    }

    enum CodingKeys: String, CodingKey {
        case profile, argv, code, codeFileName = "code_file_name", lang, stdin, env, cwd, setup, files, agentDigest = "agent_digest"
    }

    // Code and stdin are base64 text in the stored form (not arrays of numbers).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        profile = try c.decode(Profile.self, forKey: .profile)
        argv = try c.decode([String].self, forKey: .argv)
        code = try c.decodeIfPresent(String.self, forKey: .code).map { try Self.bytes($0, .code, c) }
        codeFileName = try c.decodeIfPresent(String.self, forKey: .codeFileName)
        lang = try c.decodeIfPresent(String.self, forKey: .lang)
        stdin = try c.decodeIfPresent(String.self, forKey: .stdin).map { try Self.bytes($0, .stdin, c) }
        env = try c.decodeIfPresent([String: String].self, forKey: .env) ?? [:]
        cwd = try c.decodeIfPresent(String.self, forKey: .cwd)
        setup = try c.decodeIfPresent([String].self, forKey: .setup)
        files = try c.decodeIfPresent([String: String].self, forKey: .files).map { try $0.mapValues { try Self.bytes($0, .files, c) } }
        agentDigest = try c.decodeIfPresent(String.self, forKey: .agentDigest)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(profile, forKey: .profile)
        try c.encode(argv, forKey: .argv)
        try c.encodeIfPresent(code.map { Data($0).base64EncodedString() }, forKey: .code)
        try c.encodeIfPresent(codeFileName, forKey: .codeFileName)
        try c.encodeIfPresent(lang, forKey: .lang)
        try c.encodeIfPresent(stdin.map { Data($0).base64EncodedString() }, forKey: .stdin)
        try c.encode(env, forKey: .env)
        try c.encodeIfPresent(cwd, forKey: .cwd)
        try c.encodeIfPresent(setup, forKey: .setup)
        try c.encodeIfPresent(files.map { $0.mapValues { Data($0).base64EncodedString() } }, forKey: .files)
        try c.encodeIfPresent(agentDigest, forKey: .agentDigest)
    }

    static func bytes(_ text: String, _ key: CodingKeys, _ c: KeyedDecodingContainer<CodingKeys>) throws -> [UInt8] {
        guard let data = Data(base64Encoded: text) else {
            throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "not base64")
        }
        return Array(data)
    }

    /// The request a worker hands the backend.
    public var execRequest: ExecRequest {
        ExecRequest(argv: argv, code: code, codeFileName: codeFileName ?? "main", stdin: stdin.map { .bytes($0) } ?? .none, env: env,
                    cwd: cwd ?? "/workspace")
    }
}

/// Where and how a finished run is announced: a POST of the run's JSON, signed with HMAC-SHA256.
public struct RunWebhook: Sendable, Equatable, Codable {
    public enum State: String, Sendable, Codable {
        /// Waiting for the run to finish.
        case waiting
        /// The run finished; a delivery is due at `nextAt`.
        case pending
        /// A delivery got a 2xx.
        case delivered
        /// Every delivery attempt failed.
        case failed
    }
    public var url: String
    /// The HMAC key (never shown after submit).
    public var secret: String
    public var state: State
    /// Deliveries tried so far.
    public var deliveries: Int
    /// When the next delivery is due (while `pending`).
    public var nextAt: Date?

    public init(url: String, secret: String, state: State = .waiting, deliveries: Int = 0, nextAt: Date? = nil) {
        self.url = url
        self.secret = secret
        self.state = state
        self.deliveries = deliveries
        self.nextAt = nextAt
    }

    enum CodingKeys: String, CodingKey {
        case url, secret, state, deliveries, nextAt = "next_at"
    }
}

/// One try at delivering a run's webhook.
public struct WebhookDelivery: Sendable, Equatable, Codable {
    public var runId: String
    /// 1-based.
    public var number: Int
    public var at: Date
    /// HTTP status, nil when no response came (connection refused, timeout).
    public var status: Int?
    public var error: String?
    public var durationMs: Double

    public init(runId: String, number: Int, at: Date = Date(), status: Int? = nil, error: String? = nil, durationMs: Double = 0) {
        self.runId = runId
        self.number = number
        self.at = at
        self.status = status
        self.error = error
        self.durationMs = durationMs
    }

    public var succeeded: Bool { status.map { (200..<300).contains($0) } ?? false }

    enum CodingKeys: String, CodingKey {
        case runId = "run_id", number, at, status, error, durationMs = "duration_ms"
    }
}

/// Who holds a running run, and until when (renewed by heartbeat).
public struct RunLease: Sendable, Equatable, Codable {
    public var worker: String
    public var expiresAt: Date
    public init(worker: String, expiresAt: Date) {
        self.worker = worker
        self.expiresAt = expiresAt
    }
    enum CodingKeys: String, CodingKey {
        case worker, expiresAt = "expires_at"
    }
}

/// One run as the store keeps it (its Codable form is the stored document of both engines).
public struct RunRecord: Sendable, Equatable, Codable {
    public var id: String
    public var tenantId: String
    /// Changed only by ``RunRules``, through ``move(to:)``.
    public internal(set) var state: RunState
    public var spec: RunSpec
    /// Higher runs first within a tenant.
    public var priority: Int
    public var maxAttempts: Int
    public var labels: [String: String]
    /// The submitter's `Idempotency-Key` (unique per tenant).
    public var idempotencyKey: String?
    public var createdAt: Date
    public var updatedAt: Date
    /// Start of the first attempt.
    public var startedAt: Date?
    /// When it reached a final state.
    public var endedAt: Date?
    /// Not claimed before this (retry backoff); `createdAt` for a new run.
    public var notBefore: Date
    public var attempts: [RunAttempt]
    /// The last attempt's result (nil before one finished, or when it never ran).
    public var result: ExecResult?
    /// Why it is in its state (the last attempt's reason, `cancelled by key_…`).
    public var reason: String?
    /// Set while `running`.
    public var lease: RunLease?
    /// A cancel asked while running: the worker kills the sandbox and ends the run `cancelled`.
    public var cancelRequested: Bool
    public var webhook: RunWebhook?
    /// Set on a replay (`POST /v1/runs/{id}/replay`): the run it replays and what that ran on.
    public var replay: ReplayLink?

    public init(
        id: String, tenantId: String, state: RunState = .queued, spec: RunSpec, priority: Int = 0, maxAttempts: Int = 3,
        labels: [String: String] = [:], idempotencyKey: String? = nil, createdAt: Date = Date(), updatedAt: Date? = nil,
        startedAt: Date? = nil, endedAt: Date? = nil, notBefore: Date? = nil, attempts: [RunAttempt] = [], result: ExecResult? = nil,
        reason: String? = nil, lease: RunLease? = nil, cancelRequested: Bool = false, webhook: RunWebhook? = nil
    ) {
        self.id = id
        self.tenantId = tenantId
        self.state = state
        self.spec = spec
        self.priority = priority
        self.maxAttempts = maxAttempts
        self.labels = labels
        self.idempotencyKey = idempotencyKey
        self.createdAt = createdAt
        self.updatedAt = updatedAt ?? createdAt
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.notBefore = notBefore ?? createdAt
        self.attempts = attempts
        self.result = result
        self.reason = reason
        self.lease = lease
        self.cancelRequested = cancelRequested
        self.webhook = webhook
    }

    enum CodingKeys: String, CodingKey {
        case id, tenantId = "tenant_id", state, spec, priority, maxAttempts = "max_attempts", labels
        case idempotencyKey = "idempotency_key", createdAt = "created_at", updatedAt = "updated_at"
        case startedAt = "started_at", endedAt = "ended_at", notBefore = "not_before", attempts, result, reason, lease
        case cancelRequested = "cancel_requested", webhook, replay
    }
}

extension RunRecord {
    /// Moves the run to `next` when the state machine allows it; otherwise changes nothing and throws.
    mutating func move(to next: RunState) throws(ImpossibleTransition) {
        guard state.canMove(to: next) else { throw ImpossibleTransition(what: "run", id: id, from: state.rawValue, to: next.rawValue) }
        state = next
    }
}
