import Foundation
import PostgresNIO
import SandboxCore
import SandboxStore

extension PostgresStore {
    public func ensureTenant(name: String) async throws -> Tenant {
        let fresh = try TenantRules.fresh(name: name)
        let quota = try JSONColumn.encode(fresh.overrides)
        let logger = self.logger
        return try await transaction("creating tenant \(name)") { connection in
            try await Self.ensureTenant(connection, fresh, quota: quota, logger)
        }
    }

    public func tenant(id: String) async throws -> Tenant? {
        try await fetch("reading tenant \(id)", "SELECT * FROM tenants WHERE id = \(id)", Self.tenant(from:)).first
    }

    public func tenant(name: String) async throws -> Tenant? {
        try await fetch("reading tenant \(name)", "SELECT * FROM tenants WHERE name = \(name)", Self.tenant(from:)).first
    }

    public func tenants() async throws -> [Tenant] {
        try await fetch("listing tenants", "SELECT * FROM tenants ORDER BY name", Self.tenant(from:))
    }

    public func setQuota(tenantId: String, _ overrides: QuotaOverrides) async throws {
        let text = try JSONColumn.encode(overrides)
        let changed = try await rows("setting the quota of tenant \(tenantId)", "UPDATE tenants SET quota = \(text) WHERE id = \(tenantId) RETURNING id")
        if changed.isEmpty { throw SandboxError(.notFound, "no tenant \(tenantId)") }
    }

    public func createAPIKey(tenantName: String, shape: APIKeyShape) async throws -> (key: String, record: APIKeyRecord) {
        let new = try NewAPIKey(tenantName: tenantName, shape: shape)
        let logger = self.logger
        let record = try await transaction("creating an API key for tenant \(tenantName)") { connection in
            let tenant = try await Self.ensureTenant(connection, new.tenant, quota: new.quota, logger)
            let record = APIKeyRecord(id: new.id, tenantId: tenant.id)
            try await connection.query(
                """
                INSERT INTO api_keys (id, tenant_id, hash, created_at, revoked)
                VALUES (\(record.id), \(record.tenantId), \(new.hash), \(record.createdAt.column), false)
                """, logger: logger)
            return record
        }
        logger.info("API key created", metadata: ["key": "\(new.id)", "tenant": "\(tenantName)"])
        return (new.key, record)
    }

    public func authenticate(key: String) async throws -> APIKeyRecord? {
        guard let id = APIKeyText.keyID(of: key) else { return nil }
        let hash = APIKeyText.hash(key)
        return try await knownKeys.authenticate(key) {
            guard let row = try await rows("checking an API key", "SELECT * FROM api_keys WHERE id = \(id)").first else { return nil }
            do {
                guard APIKeyText.constantTimeEqual(try row.get("hash", as: Data.self), hash) else { return nil }
                let record = try Self.apiKey(from: row)
                return record.revoked ? nil : record
            } catch {
                throw PostgresError.map(error, doing: "checking an API key", url: url.display)
            }
        }
    }

    /// Revokes a key by its id (`key_…`); a whole key is accepted too.
    public func revokeAPIKey(id given: String) async throws {
        let id = APIKeyText.keyID(of: given) ?? given
        let changed = try await rows("revoking API key \(id)", "UPDATE api_keys SET revoked = true WHERE id = \(id) RETURNING id")
        knownKeys.forget(keyID: id)
        guard !changed.isEmpty else {
            throw SandboxError(.notFound, "no API key '\(id)'; `sandboxer key list` shows the key ids (key_…)")
        }
        logger.info("API key revoked", metadata: ["key": "\(id)"])
    }

    /// Every API key (never a secret) with its tenant's name, oldest first; only `tenantName`'s
    /// when given.
    public func apiKeys(tenantName: String? = nil) async throws(SandboxError) -> [(record: APIKeyRecord, tenant: String)] {
        try await fetch(
            "listing API keys",
            """
            SELECT k.*, t.name AS tenant_name FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
            WHERE \(tenantName)::text IS NULL OR t.name = \(tenantName) ORDER BY k.created_at, k.id
            """
        ) { row in (try Self.apiKey(from: row), try row.get("tenant_name", as: String.self)) }
    }

    static func ensureTenant(_ connection: PostgresConnection, _ fresh: Tenant, quota: String, _ logger: Logger) async throws -> Tenant {
        try await connection.query(
            """
            INSERT INTO tenants (id, name, created_at, quota) VALUES (\(fresh.id), \(fresh.name), \(fresh.createdAt.column), \(quota))
            ON CONFLICT (name) DO NOTHING
            """, logger: logger)
        guard let row = try await connection.rows("SELECT * FROM tenants WHERE name = \(fresh.name)", logger).first else {
            throw SandboxError(.system, "tenant \(fresh.name) vanished while it was created; retry")
        }
        return try tenant(from: row)
    }

    static func tenant(from row: PostgresRandomAccessRow) throws -> Tenant {
        Tenant(
            id: try row.get("id"), name: try row.get("name"), createdAt: try row.date("created_at"),
            overrides: try JSONColumn.decode(QuotaOverrides.self, text: try row.get("quota"), what: "a tenant's quota"))
    }

    static func apiKey(from row: PostgresRandomAccessRow) throws -> APIKeyRecord {
        APIKeyRecord(id: try row.get("id"), tenantId: try row.get("tenant_id"), createdAt: try row.date("created_at"), revoked: try row.get("revoked"))
    }
}
