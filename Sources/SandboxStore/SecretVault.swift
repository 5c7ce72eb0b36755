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
    public var name: String
    public var hosts: [String]
    public var header: String?
    public var createdAt: Date
    public var updatedAt: Date

    public init(_ record: SecretRecord) {
        name = record.name
        hosts = record.hosts
        header = record.header
        createdAt = record.createdAt
        updatedAt = record.updatedAt
    }

    enum CodingKeys: String, CodingKey { case name, hosts, header, createdAt = "created_at", updatedAt = "updated_at" }
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

    /// Validates and stores a secret, replacing one with the same name. Returns what may be shown.
    @discardableResult
    public func set(_ name: String, value: [UInt8], hosts: [String], header: String?) async throws(SandboxError) -> SecretInfo {
        try SecretRules.checkName(name)
        let hosts = try SecretRules.normalizedHosts(hosts)
        if let header { try SecretRules.checkHeader(header) }
        try SecretRules.checkValue(value, name: name)
        let sealed = try box.seal(value, name: name, hosts: hosts, header: header)
        let now = Date()
        let created = try await store.secret(name: name)?.createdAt ?? now
        let record = SecretRecord(name: name, hosts: hosts, header: header, sealed: sealed, createdAt: created, updatedAt: now)
        try await store.putSecret(record)
        logger.info("secret set", metadata: ["name": "\(name)", "hosts": "\(hosts.joined(separator: ","))"])
        return SecretInfo(record)
    }

    /// The secret's value, hosts and header; `not_found` naming the known secrets when missing.
    public func reveal(_ name: String) async throws(SandboxError) -> Secret {
        guard let record = try await store.secret(name: name) else { throw try await missing(name, .notFound) }
        return try open(record)
    }

    /// Decrypts a stored record.
    func open(_ record: SecretRecord) throws(SandboxError) -> Secret {
        let value = try box.open(record.sealed, name: record.name, hosts: record.hosts, header: record.header)
        return Secret(name: record.name, value: value, hosts: record.hosts, header: record.header)
    }

    /// Every secret, by name, without values.
    public func list() async throws(SandboxError) -> [SecretInfo] {
        try await store.secrets().map(SecretInfo.init)
    }

    /// Removes a secret; `not_found` when there is none by that name.
    public func remove(_ name: String) async throws(SandboxError) {
        guard try await store.deleteSecret(name: name) else { throw try await missing(name, .notFound) }
        logger.info("secret removed", metadata: ["name": "\(name)"])
    }

    /// The error for a name the server does not hold: names it, the known ones, and how to set it.
    func missing(_ name: String, _ code: SandboxError.Code) async throws(SandboxError) -> SandboxError {
        let names = try await store.secrets().map(\.name)
        let known = names.isEmpty ? "it holds no secrets" : "known: \(names.joined(separator: ", "))"
        return SandboxError(code, "secret '\(name)' is not held by this server; \(known); set it with `sandboxer secret set \(name) --hosts …`")
    }
}
