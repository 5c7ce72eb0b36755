import Foundation
import SandboxCore
import SandboxStore

/// A run as the API, the CLI's `--json`, webhooks and the monitor show it (openapi.yaml `Run`).
/// Dates are ISO 8601 with ``RunView/encoder``; the webhook secret appears only when asked for
/// (the submit reply).
public struct RunView: Sendable, Equatable, Codable {
    public struct Webhook: Sendable, Equatable, Codable {
        public var url: String
        public var state: RunWebhook.State
        public var deliveries: Int
        public var secret: String?
    }

    public var id: String
    public var state: RunState
    public var profile: String
    public var isolation: IsolationLevel
    public var lang: String?
    public var argv: [String]
    public var priority: Int
    public var maxAttempts: Int
    public var labels: [String: String]
    public var idempotencyKey: String?
    public var createdAt: Date
    public var updatedAt: Date
    public var startedAt: Date?
    public var endedAt: Date?
    /// Set for a queued run still in its retry backoff.
    public var notBefore: Date?
    public var attempts: [RunAttempt]
    public var result: ExecResult?
    public var reason: String?
    public var cancelRequested: Bool
    public var webhook: Webhook?
    /// A replay's original run (nil: not a replay).
    public var replayOf: String?
    /// A finished replay: whether its stdout is the original's byte for byte (nil until it ran).
    public var outputMatches: Bool?
    /// A finished replay: what differs in the environment it ran on (empty: nothing).
    public var changes: [EnvironmentChange]?

    public init(_ r: RunRecord, showSecret: Bool = false, now: Date = Date()) {
        id = r.id
        state = r.state
        profile = r.spec.profile.name
        isolation = r.spec.profile.isolation
        lang = r.spec.lang
        argv = r.spec.argv
        priority = r.priority
        maxAttempts = r.maxAttempts
        labels = r.labels
        idempotencyKey = r.idempotencyKey
        createdAt = r.createdAt
        updatedAt = r.updatedAt
        startedAt = r.startedAt
        endedAt = r.endedAt
        notBefore = r.state == .queued && r.notBefore > now ? r.notBefore : nil
        attempts = r.attempts
        result = r.result
        reason = r.reason
        cancelRequested = r.cancelRequested
        webhook = r.webhook.map { Webhook(url: $0.url, state: $0.state, deliveries: $0.deliveries, secret: showSecret ? $0.secret : nil) }
        if let replay = r.replay {
            replayOf = replay.of
            let ran = r.state.isFinal ? r.attempts.last?.environment : nil
            outputMatches = ReplayComparison.outputMatches(replay.original, ran)
            if let original = replay.original, let ran { changes = ReplayComparison.changes(original, ran) }
        }
    }

    enum CodingKeys: String, CodingKey {
        case id, state, profile, isolation, lang, argv, priority, maxAttempts = "max_attempts", labels
        case idempotencyKey = "idempotency_key", createdAt = "created_at", updatedAt = "updated_at", startedAt = "started_at"
        case endedAt = "ended_at", notBefore = "not_before", attempts, result, reason, cancelRequested = "cancel_requested", webhook
        case replayOf = "replay_of", outputMatches = "output_matches", changes
    }

    // Absent optionals are written as null (the API's documented form), not left out.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(state, forKey: .state)
        try c.encode(profile, forKey: .profile)
        try c.encode(isolation, forKey: .isolation)
        try c.encode(lang, forKey: .lang)
        try c.encode(argv, forKey: .argv)
        try c.encode(priority, forKey: .priority)
        try c.encode(maxAttempts, forKey: .maxAttempts)
        try c.encode(labels, forKey: .labels)
        try c.encode(idempotencyKey, forKey: .idempotencyKey)
        try c.encode(createdAt, forKey: .createdAt)
        try c.encode(updatedAt, forKey: .updatedAt)
        try c.encode(startedAt, forKey: .startedAt)
        try c.encode(endedAt, forKey: .endedAt)
        try c.encode(notBefore, forKey: .notBefore)
        try c.encode(attempts, forKey: .attempts)
        try c.encode(result, forKey: .result)
        try c.encode(reason, forKey: .reason)
        try c.encode(cancelRequested, forKey: .cancelRequested)
        try c.encode(webhook, forKey: .webhook)
        // Only a replay has these (its comparison null until it ends).
        if let replayOf {
            try c.encode(replayOf, forKey: .replayOf)
            try c.encode(outputMatches, forKey: .outputMatches)
            try c.encode(changes, forKey: .changes)
        }
    }

    /// The API's JSON form: sorted keys, ISO 8601 dates with milliseconds (run timings matter).
    public static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        e.dateEncodingStrategy = .custom { date, encoder in
            var c = encoder.singleValueContainer()
            try c.encode(date.formatted(Self.dateStyle))
        }
        return e
    }()

    /// Reads what ``encoder`` wrote (dates with or without fractional seconds).
    public static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .custom { decoder in
            let text = try decoder.singleValueContainer().decode(String.self)
            if let date = try? Date(text, strategy: Self.dateStyle) ?? nil { return date }
            if let date = try? Date(text, strategy: Date.ISO8601FormatStyle()) { return date }
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not an ISO 8601 date: \(text)"))
        }
        return d
    }()

    static let dateStyle = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
}
