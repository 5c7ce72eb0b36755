import Foundation
import Logging
import SandboxCore

/// A customer of the server: every sandbox, exec and key belongs to exactly one.
public struct Tenant: Sendable, Equatable, Codable {
    public var id: String
    public var name: String
    public var createdAt: Date
    /// The quotas the operator set for this tenant; the server's defaults fill the rest.
    public var overrides: QuotaOverrides
    public init(id: String, name: String, createdAt: Date = Date(), overrides: QuotaOverrides = QuotaOverrides()) {
        self.id = id
        self.name = name
        self.createdAt = createdAt
        self.overrides = overrides
    }
}

/// An API key as stored: only a hash of the secret part is kept.
public struct APIKeyRecord: Sendable, Equatable {
    /// Public id of the key (the part before the secret, safe to log), e.g. `key_1a2b3c4d`.
    public var id: String
    public var tenantId: String
    public var createdAt: Date
    public var revoked: Bool
    public init(id: String, tenantId: String, createdAt: Date = Date(), revoked: Bool = false) {
        self.id = id
        self.tenantId = tenantId
        self.createdAt = createdAt
        self.revoked = revoked
    }
}

/// Lifecycle of a long-lived sandbox. `destroyed` and `lost` are final.
///
/// `creating → running → stopping → destroyed`; any non-final state `→ lost` when the sandbox
/// stops answering (agent died, host resources gone after a restart), with a reason.
/// `running ⇄ paused` (processes frozen, memory kept); `running/paused → hibernated → running`
/// (processes ended, filesystem kept on disk, started again on it); paused and hibernated
/// sandboxes can be destroyed (`→ stopping`) or lost like running ones.
public enum SandboxState: String, Sendable, Codable, CaseIterable {
    case creating, running, paused, hibernated, stopping, destroyed, lost

    public var isFinal: Bool { self == .destroyed || self == .lost }

    /// Whether the state machine allows going from `self` to `next`.
    public func canMove(to next: SandboxState) -> Bool {
        switch (self, next) {
        case (.creating, .running), (.creating, .stopping), (.creating, .lost): return true
        case (.running, .stopping), (.running, .lost), (.running, .paused), (.running, .hibernated): return true
        case (.paused, .running), (.paused, .hibernated), (.paused, .stopping), (.paused, .lost): return true
        case (.hibernated, .running), (.hibernated, .stopping), (.hibernated, .lost): return true
        case (.stopping, .destroyed), (.stopping, .lost): return true
        default: return false
        }
    }
}

/// A state change the sandbox state machine does not allow: a bug of the caller, never written.
public struct ImpossibleTransition: Error, CustomStringConvertible, Sendable {
    public var what: String
    public var id: String
    public var from: String
    public var to: String
    public var description: String { "\(what) \(id) cannot go from \(from) to \(to)" }
    public init(what: String, id: String, from: String, to: String) {
        (self.what, self.id, self.from, self.to) = (what, id, from, to)
    }

    /// The error a store call answers with when its change was refused (logged: it is a bug).
    public func refused(doing what: String) -> SandboxError {
        Logger(label: "sandboxer.store").error("internal error: impossible state transition refused", metadata: [
            "what": "\(self.what)", "id": "\(id)", "from": "\(from)", "to": "\(to)", "doing": "\(what)"])
        return SandboxError(.system, "\(what): internal error: \(description); nothing was written")
    }
}

/// One long-lived sandbox as the store keeps it.
public struct SandboxRecord: Sendable, Equatable, Codable {
    public var id: String
    public var tenantId: String
    /// Changed only through ``move(to:reason:at:)``, which holds to ``SandboxState/canMove(to:)``.
    public internal(set) var state: SandboxState
    /// Profile as resolved at creation (name + every setting), so the sandbox can be adopted after a restart.
    public var profile: Profile
    public var createdAt: Date
    public var updatedAt: Date
    /// When the TTL ends (nil: no TTL).
    public var expiresAt: Date?
    /// Destroyed after this long without an exec or file call (nil: never).
    public var idleTimeoutSeconds: Double?
    public var lastActivityAt: Date
    public var metadata: [String: String]
    /// Why the sandbox is `lost` (or why it was destroyed: ttl, idle, api).
    public var reason: String?
    /// Which server process created it (host name + data dir), for fleets later.
    public var node: String
    public var execCount: Int
    public var cpuMs: Double
    /// The manifest digest of the image template the sandbox's root was made from, resolved when
    /// it was created (nil: the built-in `host` template, or an isolation without a root).
    public var templateDigest: String?
    /// Access through E2B's sandbox plane (envd access tokens, `secure`); nil for sandboxes not
    /// created through the E2B API.
    public var envdAccess: EnvdAccess?

    public init(
        id: String, tenantId: String, state: SandboxState, profile: Profile, createdAt: Date = Date(),
        updatedAt: Date = Date(), expiresAt: Date? = nil, idleTimeoutSeconds: Double? = nil, lastActivityAt: Date = Date(),
        metadata: [String: String] = [:], reason: String? = nil, node: String = "", execCount: Int = 0, cpuMs: Double = 0,
        templateDigest: String? = nil, envdAccess: EnvdAccess? = nil
    ) {
        self.templateDigest = templateDigest
        self.envdAccess = envdAccess
        self.id = id
        self.tenantId = tenantId
        self.state = state
        self.profile = profile
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.expiresAt = expiresAt
        self.idleTimeoutSeconds = idleTimeoutSeconds
        self.lastActivityAt = lastActivityAt
        self.metadata = metadata
        self.reason = reason
        self.node = node
        self.execCount = execCount
        self.cpuMs = cpuMs
    }
}

/// One exec in a sandbox: what ran, how it ended, what it used.
public struct ExecRecord: Sendable, Equatable, Codable {
    public var id: String
    public var sandboxId: String
    public var tenantId: String
    public var argv: [String]
    public var startedAt: Date
    public var endedAt: Date?
    /// nil while running.
    public var outcome: Outcome?
    public var exitCode: Int32?
    public var usage: Usage?
    public var reason: String?
    public init(id: String, sandboxId: String, tenantId: String, argv: [String], startedAt: Date = Date(),
                endedAt: Date? = nil, outcome: Outcome? = nil, exitCode: Int32? = nil, usage: Usage? = nil, reason: String? = nil) {
        self.id = id
        self.sandboxId = sandboxId
        self.tenantId = tenantId
        self.argv = argv
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.outcome = outcome
        self.exitCode = exitCode
        self.usage = usage
        self.reason = reason
    }
}

/// Filter and page of a sandbox listing.
public struct SandboxQuery: Sendable, Equatable {
    public var tenantId: String
    public var states: [SandboxState]?
    /// Every pair must match.
    public var metadata: [String: String]
    /// Opaque cursor from the previous page (`nil`: first page).
    public var cursor: String?
    public var limit: Int
    public init(tenantId: String, states: [SandboxState]? = nil, metadata: [String: String] = [:], cursor: String? = nil, limit: Int = 100) {
        self.tenantId = tenantId
        self.states = states
        self.metadata = metadata
        self.cursor = cursor
        self.limit = limit
    }
}

/// One page of a listing and the cursor of the next (nil: last page).
public struct Page<Item: Sendable>: Sendable {
    public var items: [Item]
    public var nextCursor: String?
    public init(items: [Item], nextCursor: String?) {
        self.items = items
        self.nextCursor = nextCursor
    }
}

extension SandboxRecord {
    /// Moves the sandbox to `next` (stamping `updatedAt`, and `reason` when given) when the state
    /// machine allows it; otherwise changes nothing and throws.
    public mutating func move(to next: SandboxState, reason: String? = nil, at now: Date = Date()) throws(ImpossibleTransition) {
        guard state.canMove(to: next) else {
            throw ImpossibleTransition(what: "sandbox", id: id, from: state.rawValue, to: next.rawValue)
        }
        state = next
        updatedAt = now
        if let reason { self.reason = reason }
    }
}
