import Foundation
import SandboxCore
import SandboxStore

/// What `POST /v1/sandboxes` (and `sandboxer create`) asks for.
public struct CreateSandboxRequest: Sendable, Equatable {
    /// A profile by name, or a whole profile inline (the YAML/JSON profile form).
    public enum ProfileRef: Sendable, Equatable {
        case named(String)
        case inline(Profile)
    }
    public var profile: ProfileRef
    /// Overrides the profile's isolation (`container`, `wasm`, …).
    public var isolation: IsolationLevel?
    /// Extra environment for every process of the sandbox.
    public var env: [String: String]
    /// Lifetime (nil: the profile's TTL, else the server's default).
    public var ttl: Duration?
    /// Destroyed after this long without an exec or file call (nil: never).
    public var idleTimeout: Duration?
    public var metadata: [String: String]
    /// Server-held secrets to add to the profile's (placeholders in the environment).
    public var secrets: [String] = []
    /// A command run once before the sandbox is handed over, under the profile's `setup` phase
    /// network policy; the sandbox then switches to the `run` phase.
    public var setup: ExecRequest?
    /// Restore: the sandbox starts with exactly this snapshot's filesystem (its image as the root,
    /// its workspace in `/workspace`); the profile's other settings apply as on any create.
    public var snapshot: String?
    /// Access through E2B's sandbox plane (the create call's envd token hash, `secure`): kept in
    /// the sandbox's record.
    public var envdAccess: EnvdAccess?

    public init(profile: ProfileRef = .named("default"), isolation: IsolationLevel? = nil, env: [String: String] = [:],
                ttl: Duration? = nil, idleTimeout: Duration? = nil, metadata: [String: String] = [:]) {
        self.profile = profile
        self.isolation = isolation
        self.env = env
        self.ttl = ttl
        self.idleTimeout = idleTimeout
        self.metadata = metadata
    }
}

/// Something that happened to a tenant's sandboxes, for `GET /v1/events` and the monitor page.
public struct SandboxLifecycleEvent: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Codable {
        case sandboxCreated = "sandbox.created"
        case sandboxDestroyed = "sandbox.destroyed"
        case sandboxLost = "sandbox.lost"
        case execStarted = "exec.started"
        case execEnded = "exec.ended"
    }
    public var type: Kind
    public var tenantId: String
    public var sandboxId: String
    public var at: Date
    public var state: SandboxState?
    public var execId: String?
    public var outcome: Outcome?
    public var reason: String?

    public init(type: Kind, tenantId: String, sandboxId: String, at: Date = Date(), state: SandboxState? = nil,
                execId: String? = nil, outcome: Outcome? = nil, reason: String? = nil) {
        self.type = type
        self.tenantId = tenantId
        self.sandboxId = sandboxId
        self.at = at
        self.state = state
        self.execId = execId
        self.outcome = outcome
        self.reason = reason
    }

    enum CodingKeys: String, CodingKey {
        case type, tenantId = "tenant_id", sandboxId = "sandbox_id", at, state, execId = "exec_id", outcome, reason
    }
}

/// What start-up reconciliation did.
public struct ReconcileReport: Sendable, Equatable {
    /// Sandboxes whose agent answered: running again under this process.
    public var adopted: [String] = []
    /// Sandboxes recorded as live that did not answer: now `lost`, their leftovers removed.
    public var lost: [String] = []
    /// Host resources no record claims (removed).
    public var orphans: [String] = []
    public init() {}
}
