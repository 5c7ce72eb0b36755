import Foundation
import SandboxCore
import SandboxManager
import SandboxRuns
import SandboxStore

/// `POST /v1/runs`: the run's own fields (profile, isolation, secrets, setup, priority,
/// max_attempts, labels, webhook), then the exec fields (`cmd` or `code` + `lang`, `args`, `env`,
/// `cwd`, `stdin`/`stdin_base64`, `timeout`). Everything is checked before anything is queued.
/// `sandboxer submit` sends the same type.
public struct RunSubmitBody: Codable, Sendable {
    /// `webhook`: where the run's end is posted, and the key that signs it (made when not given).
    public struct Webhook: Sendable, Equatable {
        public var url: String
        public var secret: String?
        public init(url: String, secret: String? = nil) { (self.url, self.secret) = (url, secret) }
    }

    public var profile: CreateSandboxRequest.ProfileRef?
    public var isolation: IsolationLevel?
    public var secrets: [String] = []
    public var setup: [String]?
    public var priority = 0
    public var maxAttempts = 3
    public var labels: [String: String] = [:]
    public var webhook: Webhook?
    public var exec: ExecFields

    public init(exec: ExecFields, profile: CreateSandboxRequest.ProfileRef? = nil, isolation: IsolationLevel? = nil) {
        (self.exec, self.profile, self.isolation) = (exec, profile, isolation)
    }

    public init(from decoder: any Decoder) throws {
        var body = try BodyFields(decoder)
        profile = try body.profileRef()
        isolation = try body.isolation()
        try body.secretNames(into: &secrets)
        setup = try body.setupCommand()
        priority = try body.int("priority", min: -1000, max: 1000) ?? 0
        maxAttempts = try body.int("max_attempts", min: 1, max: 20) ?? 3
        labels = try body.stringMap("labels") ?? [:]
        guard labels.count <= 32, labels.allSatisfy({ !$0.key.isEmpty && $0.key.utf8.count <= 64 && $0.value.utf8.count <= 256 }) else {
            throw Problem.invalid("labels", "labels: at most 32, keys of 1 to 64 bytes, values up to 256 bytes")
        }
        webhook = try Self.webhook(&body)
        exec = try ExecFields(&body)
        try body.finish()
    }

    /// The fields that differ from the defaults, in the names ``init(from:)`` reads.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: BodyKey.self)
        switch profile {
        case .named(let name): try c.encode(name, forKey: BodyKey("profile"))
        case .inline(let profile): try c.encode(profile, forKey: BodyKey("profile"))
        case nil: break
        }
        try c.encodeIfPresent(isolation, forKey: BodyKey("isolation"))
        if !secrets.isEmpty { try c.encode(secrets, forKey: BodyKey("secrets")) }
        try c.encodeIfPresent(setup, forKey: BodyKey("setup"))
        if priority != 0 { try c.encode(priority, forKey: BodyKey("priority")) }
        if maxAttempts != 3 { try c.encode(maxAttempts, forKey: BodyKey("max_attempts")) }
        if !labels.isEmpty { try c.encode(labels, forKey: BodyKey("labels")) }
        if let webhook {
            if let secret = webhook.secret {
                var w = c.nestedContainer(keyedBy: BodyKey.self, forKey: BodyKey("webhook"))
                try w.encode(webhook.url, forKey: BodyKey("url"))
                try w.encode(secret, forKey: BodyKey("secret"))
            } else {
                try c.encode(webhook.url, forKey: BodyKey("webhook"))
            }
        }
        try exec.encode(into: &c)
    }

    /// Whether the profile is an inline object (a tenant may be refused weaker isolation in one).
    var inlineProfile: Bool { if case .inline = profile { true } else { false } }

    /// The run to queue: the profile resolved (`default` when none is named) with the body's
    /// isolation, secrets and timeout applied, and the code and input checked against its limits.
    func record(tenantId: String, idempotencyKey: String?, profiles: ProfileLoader) throws -> RunRecord {
        var profile: Profile
        switch self.profile ?? .named("default") {
        case .named(let name): profile = try profiles.load(name)
        case .inline(let inline): profile = inline
        }
        if let isolation { profile.isolation = isolation }
        for name in secrets where !profile.secrets.contains(name) { profile.secrets.append(name) }
        let request = try exec.request(isolation: profile.isolation)
        if let timeout = request.timeout {
            guard timeout <= profile.limits.timeout else {
                throw SandboxError(.limitExceeded, "timeout \(timeout) is more than the profile's timeout (\(profile.limits.timeout)); ask for less or use another profile",
                                   limit: SandboxError.LimitViolation(name: "timeout", limit: Int64(profile.limits.timeout.seconds * 1000), actual: Int64(timeout.seconds * 1000)))
            }
            profile.limits.timeout = timeout
        }
        var stdin: [UInt8]?
        if case .bytes(let b) = request.stdin { stdin = b }
        try profile.limits.checkRequest(codeBytes: request.code.map { Int64($0.count) }, inputBytes: stdin.map { Int64($0.count) })
        try EnvironmentCheck.validate(request.env, field: "env")
        var spec = RunSpec(profile: profile, argv: request.argv, code: request.code, codeFileName: request.code == nil ? nil : request.codeFileName,
                           lang: request.code == nil ? nil : RunBody.language(of: request.codeFileName), stdin: stdin, env: request.env,
                           cwd: request.cwd == "/workspace" ? nil : request.cwd)
        spec.setup = setup
        let made = (0..<16).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
        return RunRecord(id: SandboxSpec.newID(prefix: "run-"), tenantId: tenantId, spec: spec, priority: priority, maxAttempts: maxAttempts,
                         labels: labels, idempotencyKey: idempotencyKey, webhook: webhook.map { RunWebhook(url: $0.url, secret: $0.secret ?? "whsec_" + made) })
    }

    /// `webhook`: `"https://…"` or `{"url": …, "secret": …}`; without a secret one is made when the
    /// run is queued (and shown once).
    static func webhook(_ body: inout BodyFields) throws -> Webhook? {
        var url: String
        var secret: String?
        if var fields = try? body.object("webhook") {
            guard let u = try fields.string("url") else { throw Problem.invalid("webhook.url", "webhook.url is required") }
            url = u
            secret = try fields.string("secret")
            try fields.finish()
        } else if let text = try? body.string("webhook") {
            url = text
        } else if body.has("webhook") {
            throw Problem.invalid("webhook", "webhook: an http(s) URL or {\"url\": …, \"secret\": …}")
        } else {
            return nil
        }
        guard url.utf8.count <= 2048, let parsed = URLComponents(string: url), let scheme = parsed.scheme?.lowercased(),
              scheme == "http" || scheme == "https", let host = parsed.host, !host.isEmpty
        else {
            throw Problem.invalid("webhook", "webhook: '\(url.prefix(200))' is not an http:// or https:// URL with a host")
        }
        if let s = secret, s.utf8.count < 16 || s.utf8.count > 256 {
            throw Problem.invalid("webhook.secret", "webhook.secret: 16 to 256 bytes (or leave it out and use the one the reply shows)")
        }
        return Webhook(url: url, secret: secret)
    }
}

/// The run queue's query and header rules.
enum RunBody {
    static func language(of fileName: String) -> String? {
        Language.allCases.first { $0.fileName == fileName }?.rawValue
    }

    /// `Idempotency-Key`: 1 to 200 visible ASCII characters.
    static func idempotencyKey(_ text: String?) throws -> String? {
        guard let text else { return nil }
        guard !text.isEmpty, text.utf8.count <= 200, text.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else {
            throw Problem.invalid("Idempotency-Key", "Idempotency-Key: 1 to 200 visible ASCII characters")
        }
        guard !text.hasPrefix(SubmissionPlan.keyPrefix) else {
            throw Problem.invalid("Idempotency-Key", "Idempotency-Key: keys starting with '\(SubmissionPlan.keyPrefix)' belong to bounty submissions; choose another")
        }
        return text
    }

    /// `GET /v1/runs` filters: `state` (comma-separated), `since` (RFC 3339 or epoch seconds),
    /// `label=KEY=VALUE` (repeatable), `cursor`, `limit`.
    static func listQuery(_ params: [(String, String)], tenantId: String) throws -> RunQuery {
        var query = RunQuery(tenantId: tenantId)
        for (k, v) in params {
            switch k {
            case "state":
                var states = query.states ?? []
                for part in v.split(separator: ",") {
                    guard let s = RunState(rawValue: String(part)) else {
                        throw Problem.invalid("state", "state: unknown state '\(part)'; one of: \(RunState.allCases.map(\.rawValue).joined(separator: ", "))")
                    }
                    states.append(s)
                }
                query.states = states
            case "since":
                if let seconds = Double(v), seconds.isFinite, abs(seconds) < 1e11 {
                    query.since = Date(timeIntervalSince1970: seconds)
                } else if let date = try? RunView.decoder.decode(Date.self, from: Data("\"\(v.replacingOccurrences(of: "\"", with: ""))\"".utf8)) {
                    query.since = date
                } else {
                    throw Problem.invalid("since", "since: an RFC 3339 time (2026-11-30T08:00:00Z) or seconds since the epoch")
                }
            case "label":
                // `k=` matches an empty value (labels may have one).
                let parts = v.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2, !parts[0].isEmpty else { throw Problem.invalid("label", "label: KEY=VALUE") }
                query.labels[String(parts[0])] = String(parts[1])
            case "cursor": query.cursor = v
            case "limit":
                query.limit = try Problem.pageLimit(v)
            default:
                throw Problem.invalid(k, "unknown query parameter '\(k)'; allowed: state, since, label, cursor, limit")
            }
        }
        return query
    }
}
