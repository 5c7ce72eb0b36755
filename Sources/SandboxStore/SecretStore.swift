import Foundation
import SandboxCore

/// Whose a secret is: one tenant's (only that tenant's sandboxes may ask for it), or shared by the
/// operator with every tenant. There is no implicit sharing: a secret is set for one or the other.
public enum SecretScope: Sendable, Hashable, CustomStringConvertible {
    case shared
    case tenant(String)

    /// The stored form: the tenant's id, or `*` for shared (no tenant id has that shape).
    public var storageKey: String {
        switch self {
        case .shared: return "*"
        case .tenant(let id): return id
        }
    }

    public init(storageKey: String) {
        self = storageKey == "*" ? .shared : .tenant(storageKey)
    }

    public var description: String {
        switch self {
        case .shared: return "shared"
        case .tenant(let id): return "tenant \(id)"
        }
    }
}

/// One operator-configured secret as the store keeps it: its scope (a tenant, or shared), its name,
/// the hosts it may be sent to, the header it goes into, and the value only as ``SecretBox``
/// sealed it (never in the clear).
public struct SecretRecord: Sendable, Equatable {
    /// The tenant it belongs to, or shared; with `name`, the primary key.
    public var scope: SecretScope
    /// The environment variable name (`OPENAI_API_KEY`).
    public var name: String
    /// Host names or `*.` wildcards (lower case) the egress proxy may send the value to.
    public var hosts: [String]
    /// `Name: template` with `{value}` in the template (`Authorization: Bearer {value}`), or nil.
    public var header: String?
    /// The value as ``SecretBox/seal(_:name:hosts:header:)`` returned it.
    public var sealed: [UInt8]
    public var createdAt: Date
    public var updatedAt: Date

    public init(scope: SecretScope = .shared, name: String, hosts: [String], header: String?, sealed: [UInt8],
                createdAt: Date = Date(), updatedAt: Date = Date()) {
        self.scope = scope
        self.name = name
        self.hosts = hosts
        self.header = header
        self.sealed = sealed
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// Where secret records live: the same database as keys and sandboxes (SQLite or PostgreSQL).
/// Callers normally go through ``SecretVault``, which seals and validates.
public protocol SecretStore: Sendable {
    /// Inserts the record, or replaces hosts, header, sealed value and `updatedAt` of the one with
    /// the same scope and name (its `createdAt` stays).
    func putSecret(_ record: SecretRecord) async throws(SandboxError)
    /// The record with this name in this scope, or nil.
    func secret(name: String, scope: SecretScope) async throws(SandboxError) -> SecretRecord?
    /// The records of one scope (nil: every scope), by name then scope.
    func secrets(scope: SecretScope?) async throws(SandboxError) -> [SecretRecord]
    /// Deletes the record; false when there was none.
    func deleteSecret(name: String, scope: SecretScope) async throws(SandboxError) -> Bool
}

extension SecretStore {
    /// The shared record with this name.
    public func secret(name: String) async throws(SandboxError) -> SecretRecord? { try await secret(name: name, scope: .shared) }
    /// Every record of every scope.
    public func secrets() async throws(SandboxError) -> [SecretRecord] { try await secrets(scope: nil) }
    /// Deletes the shared record with this name.
    public func deleteSecret(name: String) async throws(SandboxError) -> Bool { try await deleteSecret(name: name, scope: .shared) }
}
