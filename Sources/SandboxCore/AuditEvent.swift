import Foundation
import Synchronization

/// One entry of a sandbox's audit trail: exec start/end, file operations through the API, egress
/// decisions, secret substitutions (name and host, never the value), limit breaches, kill reasons,
/// policy changes. Entries are append-only; the store numbers them per sandbox (`seq`) in the order
/// they were appended.
public struct AuditEvent: Sendable, Equatable, Codable {
    /// Position in the sandbox's trail (1, 2, …), assigned by the store; nil before it is stored.
    public var seq: Int64?
    public var at: Date
    public var sandboxId: String
    /// What happened (`sandbox.create`, `exec.start`, `egress.deny`, …: ``AuditKind``).
    public var kind: AuditKind
    /// Who caused it: an API key id, `server` (reaper, recovery), `sandbox` (egress from inside).
    public var actor: String
    /// Ties related entries together: an exec id, an egress connection id.
    public var correlation: String?
    /// Kind-specific fields (host, port, bytes_out, outcome, path, …); never a secret's value.
    public var detail: [String: EventValue]

    public init(at: Date = Date(), sandboxId: String, kind: AuditKind, actor: String, correlation: String? = nil,
                detail: [String: EventValue] = [:]) {
        self.seq = nil
        self.at = at
        self.sandboxId = sandboxId
        self.kind = kind
        self.actor = actor
        self.correlation = correlation
        self.detail = detail
    }
}

/// A JSON scalar in an audit entry's detail.
public enum EventValue: Sendable, Equatable, Codable, CustomStringConvertible, ExpressibleByStringLiteral,
    ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral {
    case string(String)
    case int(Int64)
    case bool(Bool)

    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let i = try? c.decode(Int64.self) { self = .int(i) }
        else { self = .string(try c.decode(String.self)) }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .string(let s): try c.encode(s)
        case .int(let i): try c.encode(i)
        case .bool(let b): try c.encode(b)
        }
    }

    public var description: String {
        switch self {
        case .string(let s): return s
        case .int(let i): return String(i)
        case .bool(let b): return String(b)
        }
    }
}

/// Where audit entries go (the manager's ordered recorder in `serve`, a log in the CLI). `record`
/// never blocks the caller; entries from one caller keep their order.
public protocol AuditSink: Sendable {
    func record(_ event: AuditEvent)
}

/// An ``AuditSink`` whose destination is set later (the parts made before the manager — the egress
/// proxy, the WASM backend's tool calls — write through it once the manager's trail exists).
/// Entries recorded before a destination is set are dropped.
public final class AuditRelay: AuditSink, Sendable {
    private let target = Mutex<(any AuditSink)?>(nil)
    public init() {}
    public func set(_ sink: any AuditSink) { target.withLock { $0 = sink } }
    public func record(_ event: AuditEvent) { target.withLock { $0 }?.record(event) }
}

/// What the egress policy did with one connection, as tools outside the proxy (the WASM backend's
/// `http.get`) report it for the audit trail.
public struct EgressNote: Sendable, Equatable, Codable {
    public var host: String
    public var port: UInt16
    public var allowed: Bool
    /// The rule that allowed it, or the reason it was denied.
    public var rule: String
    public var bytesIn: Int64
    public init(host: String, port: UInt16, allowed: Bool, rule: String, bytesIn: Int64 = 0) {
        self.host = host
        self.port = port
        self.allowed = allowed
        self.rule = rule
        self.bytesIn = bytesIn
    }
    enum CodingKeys: String, CodingKey { case host, port, allowed, rule, bytesIn = "bytes_in" }

    /// The audit entry of this note (`egress.allow`/`egress.deny`, `via` naming the tool).
    public func event(sandboxId: String, via: String, durationMs: Double) -> AuditEvent {
        var detail: [String: EventValue] = ["host": .string(host), "port": .int(Int64(port)), "via": .string(via),
                                            "duration_ms": .int(Int64(durationMs.rounded()))]
        if allowed {
            detail["rule"] = .string(rule)
            detail["bytes_in"] = .int(bytesIn)
        } else {
            detail["reason"] = .string(rule)
        }
        return AuditEvent(sandboxId: sandboxId, kind: allowed ? .egressAllow : .egressDeny, actor: "sandbox", detail: detail)
    }
}
