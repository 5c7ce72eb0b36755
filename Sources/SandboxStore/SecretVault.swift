import Foundation
import Logging
import SandboxCore

/// A secret's value with where it may go: what ``SecretVault/reveal(_:)`` returns. Its
/// `description` never shows the value.
public struct Secret: Sendable, Equatable, CustomStringConvertible {
    public var name: String
    public var value: [UInt8]
    /// Host names or `*.` wildcards (lower case).
    public var hosts: [String]
    /// `Name: template` with `{value}`, or nil.
    public var header: String?

    public init(name: String, value: [UInt8], hosts: [String], header: String?) {
        self.name = name
        self.value = value
        self.hosts = hosts
        self.header = header
    }

    public var description: String { "Secret(\(name), hosts: \(hosts), header: \(header ?? "-"), value: <\(value.count) bytes>)" }
}

/// What may be shown about a secret: everything but its value (`sandboxer secret list`).
public struct SecretInfo: Sendable, Equatable, Codable {
    /// `shared`, or the id of the tenant it belongs to.
    public var scope: String
    public var name: String
    public var hosts: [String]
    public var header: String?
    public var createdAt: Date
    public var updatedAt: Date

    public init(_ record: SecretRecord) {
        scope = record.scope == .shared ? "shared" : record.scope.storageKey
        name = record.name
        hosts = record.hosts
        header = record.header
        createdAt = record.createdAt
        updatedAt = record.updatedAt
    }

    enum CodingKeys: String, CodingKey { case scope, name, hosts, header, createdAt = "created_at", updatedAt = "updated_at" }
}

/// The server's secrets: validates, seals with ``SecretBox`` and stores in a ``SecretStore``
/// (the same database as keys, SQLite or PostgreSQL); reveals values only to the egress path.
public struct SecretVault: Sendable {
    public let store: any SecretStore
    public let box: SecretBox
    let logger: Logger

    public init(store: any SecretStore, box: SecretBox, logger: Logger = Logger(label: "sandboxer.secrets")) {
        self.store = store
        self.box = box
        self.logger = logger
    }

    /// A vault on `store` with the key file of the local data directory (`--data`, created on
    /// first use; with PostgreSQL every node needs the same file).
    public static func open(store: any SecretStore, dataDirectory: String, logger: Logger = Logger(label: "sandboxer.secrets")) throws(SandboxError) -> SecretVault {
        SecretVault(store: store, box: try SecretBox.loadOrCreate(directory: dataDirectory, logger: logger), logger: logger)
    }

    /// Validates and stores a secret of `scope`, replacing one with the same scope and name.
    /// Returns what may be shown.
    @discardableResult
    public func set(_ name: String, value: [UInt8], hosts: [String], header: String?, scope: SecretScope = .shared) async throws(SandboxError) -> SecretInfo {
        try SecretRules.checkName(name)
        let hosts = try SecretRules.normalizedHosts(hosts)
        if let header { try SecretRules.checkHeader(header) }
        try SecretRules.checkValue(value, name: name)
        let sealed = try box.seal(value, scope: scope, name: name, hosts: hosts, header: header)
        let now = Date()
        let created = try await store.secret(name: name, scope: scope)?.createdAt ?? now
        let record = SecretRecord(scope: scope, name: name, hosts: hosts, header: header, sealed: sealed, createdAt: created, updatedAt: now)
        try await store.putSecret(record)
        logger.info("secret set", metadata: ["name": "\(name)", "scope": "\(scope)", "hosts": "\(hosts.joined(separator: ","))"])
        return SecretInfo(record)
    }

    /// The record a tenant's sandbox gets for `name`: the tenant's own, else a shared one; for no
    /// tenant (`sandboxer run` on the operator's machine), shared ones only.
    func visible(_ name: String, tenantId: String?) async throws(SandboxError) -> SecretRecord? {
        if let tenantId, let own = try await store.secret(name: name, scope: .tenant(tenantId)) { return own }
        return try await store.secret(name: name, scope: .shared)
    }

    /// The value, hosts and header a tenant's sandbox would get for `name` (see ``visible``);
    /// `not_found` naming the secrets that tenant may use when there is none.
    public func reveal(_ name: String, tenantId: String? = nil) async throws(SandboxError) -> Secret {
        guard let record = try await visible(name, tenantId: tenantId) else { throw try await missing(name, .notFound, tenantId: tenantId) }
        return try open(record)
    }

    /// Decrypts a stored record.
    func open(_ record: SecretRecord) throws(SandboxError) -> Secret {
        let value = try box.open(record.sealed, scope: record.scope, name: record.name, hosts: record.hosts, header: record.header)
        return Secret(name: record.name, value: value, hosts: record.hosts, header: record.header)
    }

    /// The secrets of one scope (nil: all), by name, without values.
    public func list(scope: SecretScope? = nil) async throws(SandboxError) -> [SecretInfo] {
        try await store.secrets(scope: scope).map(SecretInfo.init)
    }

    /// Removes a secret of `scope`; `not_found` when that scope holds none by that name.
    public func remove(_ name: String, scope: SecretScope = .shared) async throws(SandboxError) {
        guard try await store.deleteSecret(name: name, scope: scope) else {
            let names = try await store.secrets(scope: scope).map(\.name)
            let known = names.isEmpty ? "it holds none" : "it holds: \(names.joined(separator: ", "))"
            throw SandboxError(.notFound, "secret '\(name)' is not held for \(scope); \(known)")
        }
        logger.info("secret removed", metadata: ["name": "\(name)", "scope": "\(scope)"])
    }

    /// The error for a name a tenant cannot use: names it, the ones it can (its own and shared —
    /// never another tenant's), and how to set it.
    func missing(_ name: String, _ code: SandboxError.Code, tenantId: String?) async throws(SandboxError) -> SandboxError {
        var names = try await store.secrets(scope: .shared).map(\.name)
        if let tenantId { names += try await store.secrets(scope: .tenant(tenantId)).map(\.name) }
        names = Array(Set(names)).sorted()
        let known = names.isEmpty ? "none is set for this tenant or shared" : "known: \(names.joined(separator: ", "))"
        return SandboxError(code, "secret '\(name)' is not held by this server for this tenant; \(known); the operator sets it with `sandboxer secret set \(name) --tenant TENANT --hosts …` (or --shared)")
    }
}
