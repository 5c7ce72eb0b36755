import Foundation
import SandboxCore

/// One operator-configured secret as the store keeps it: its name, the hosts it may be sent to,
/// the header it goes into, and the value only as ``SecretBox`` sealed it (never in the clear).
/// Secrets are server-wide: every tenant's profile may ask for them by name.
public struct SecretRecord: Sendable, Equatable {
    /// The environment variable name (`OPENAI_API_KEY`); the primary key.
    public var name: String
    /// Host names or `*.` wildcards (lower case) the egress proxy may send the value to.
    public var hosts: [String]
    /// `Name: template` with `{value}` in the template (`Authorization: Bearer {value}`), or nil.
    public var header: String?
    /// The value as ``SecretBox/seal(_:name:hosts:header:)`` returned it.
    public var sealed: [UInt8]
    public var createdAt: Date
    public var updatedAt: Date

    public init(name: String, hosts: [String], header: String?, sealed: [UInt8], createdAt: Date = Date(), updatedAt: Date = Date()) {
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
    /// the same name (its `createdAt` stays).
    func putSecret(_ record: SecretRecord) async throws(SandboxError)
    /// The record with this name, or nil.
    func secret(name: String) async throws(SandboxError) -> SecretRecord?
    /// Every record, by name.
    func secrets() async throws(SandboxError) -> [SecretRecord]
    /// Deletes the record; false when there was none.
    func deleteSecret(name: String) async throws(SandboxError) -> Bool
}
