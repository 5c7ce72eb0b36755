import Foundation

/// What an audit entry records, in both trails: a sandbox's trail (``AuditEvent``) and its
/// tenant's trail (``TenantEvent``). The raw value is the dotted name stored and served
/// (`GET /v1/sandboxes/{id}/audit`, `GET /v1/audit`); adding a kind is adding a case.
public enum AuditKind: String, Sendable, Codable, CaseIterable {
    // A sandbox's life (both trails: the tenant's has the create and the delete)
    case sandboxCreate = "sandbox.create"
    case sandboxDelete = "sandbox.delete"
    case sandboxKill = "sandbox.kill"
    case sandboxTimeout = "sandbox.timeout"
    /// Frozen (`reason`: `api` or `idle`).
    case sandboxPause = "sandbox.pause"
    /// Running again after a pause or hibernation (`reason`: `api`, `auto` — a call on it woke it — or `idle`).
    case sandboxResume = "sandbox.resume"
    /// Processes ended, filesystem kept on disk (`reason`: `api` or `idle`).
    case sandboxHibernate = "sandbox.hibernate"
    /// A snapshot of the sandbox's filesystem (`POST …/snapshots`; both trails).
    case sandboxSnapshot = "sandbox.snapshot"
    /// Sandboxes made from one snapshot of the sandbox (`POST …/fork`; both trails).
    case sandboxFork = "sandbox.fork"
    // Work in a sandbox (its trail)
    case execStart = "exec.start"
    case execEnd = "exec.end"
    case limitBreach = "limit.breach"
    case fileRead = "file.read"
    case fileWrite = "file.write"
    case fileRemove = "file.remove"
    case fileMkdir = "file.mkdir"
    case fileMove = "file.move"
    case setupProcessesEnded = "setup.processes_ended"
    // The network (a sandbox's trail; `network.change` also in the tenant's)
    case egressAllow = "egress.allow"
    case egressDeny = "egress.deny"
    case secretSubstitute = "secret.substitute"
    case secretPlaceholderSent = "secret.placeholder_sent"
    case networkChange = "network.change"
    case phaseChange = "phase.change"
    // The tenant's own things (its trail)
    case keyCreate = "key.create"
    case keyRevoke = "key.revoke"
    case secretSet = "secret.set"
    case secretRemove = "secret.remove"
    case templateCreate = "template.create"
    case templateRemove = "template.remove"
    case snapshotRemove = "snapshot.remove"
    case templateBuild = "template.build"
    case quotaSet = "quota.set"
    case runSubmit = "run.submit"
    case runCancel = "run.cancel"
    case runRetry = "run.retry"
    case runReplay = "run.replay"
    case monitorLogin = "monitor.login"
    /// An agent registered (`correlation`: its id; `name`).
    case agentCreate = "agent.create"
    /// A version uploaded to an agent (`correlation`: the agent; `digest`, `status`, `created`).
    case agentVersion = "agent.version"
    /// A bounty created (`correlation`: its id; `title`, `cases`, `profile`).
    case bountyCreate = "bounty.create"
    /// An agent version submitted to a bounty (`correlation`: the submission; `bounty`, `digest`).
    case submissionCreate = "submission.create"
    /// A submission cancelled (`correlation`: the submission).
    case submissionCancel = "submission.cancel"
    /// A route audit entry from before the tenant trail (schema v8 moved them here; `detail`
    /// keeps their action, target, result and detail).
    case apiRequest = "api.request"
    // The trail about itself
    case auditGap = "audit.gap"
    case auditRateLimited = "audit.rate_limited"
    case auditTruncated = "audit.truncated"

    /// The kind stored as `name`; a name this build does not know (written by a newer node) is
    /// an error that names it.
    public init(stored name: String) throws(SandboxError) {
        guard let kind = AuditKind(rawValue: name) else {
            throw SandboxError(.system, "the store holds an audit entry of kind '\(name)', which this build does not know; upgrade this node to the fleet's newest version")
        }
        self = kind
    }

    /// Whether the entry ends its sandbox's trail (`sandbox.delete`, `sandbox.kill`).
    public var endsTrail: Bool { self == .sandboxDelete || self == .sandboxKill }
}

/// One entry of a tenant's audit trail (`GET /v1/audit`): what happened to the tenant's keys,
/// secrets, sandboxes (create, delete, network), runs and templates, by whom. The store numbers
/// a tenant's entries 1, 2, … (`seq`) in the order they were appended; append-only. Served in the
/// same JSON line shape as a sandbox's trail (`sandbox_id` null when the entry is not about one).
public struct TenantEvent: Sendable, Equatable, Codable {
    /// Position in the tenant's trail, assigned by the store; nil before it is stored.
    public var seq: Int64?
    public var at: Date
    public var tenantId: String
    /// The sandbox the entry is about, if any.
    public var sandboxId: String?
    public var kind: AuditKind
    /// Who caused it: an API key id, `cli` (the operator on the host), `server`.
    public var actor: String
    /// Ties related entries together: a run id, a key id.
    public var correlation: String?
    /// Kind-specific fields (`status`, `name`, `key_id`, …); never a secret's value or a key.
    public var detail: [String: EventValue]

    public init(at: Date = Date(), tenantId: String, sandboxId: String? = nil, kind: AuditKind, actor: String,
                correlation: String? = nil, detail: [String: EventValue] = [:]) {
        self.seq = nil
        self.at = at
        self.tenantId = tenantId
        self.sandboxId = sandboxId
        self.kind = kind
        self.actor = actor
        self.correlation = correlation
        self.detail = detail
    }
}
