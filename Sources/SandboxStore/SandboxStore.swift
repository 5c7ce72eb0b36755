import Foundation
import SandboxCore

/// Everything the server persists, behind one protocol so a PostgreSQL engine can follow the
/// SQLite one. Every method is safe to call concurrently. Errors are ``SandboxError``.
public protocol SandboxStore: Sendable {
    /// Whether the store answers; every call of this protocol goes through its guard (a deadline,
    /// `store_unavailable` while it is down).
    var health: StoreHealth { get }
    /// Whether a commit survives a crash, as the engine's settings decide (doctor, serve's start).
    func durability() async throws(SandboxError) -> StoreDurability

    // Tenants and keys
    /// Returns the tenant with this name, creating it when missing.
    func ensureTenant(name: String) async throws -> Tenant
    func tenant(id: String) async throws -> Tenant?
    func tenant(name: String) async throws -> Tenant?
    /// Every tenant, by name.
    func tenants() async throws -> [Tenant]
    /// Replaces a tenant's quota overrides (takes effect for every server within seconds).
    func setQuota(tenantId: String, _ overrides: QuotaOverrides) async throws
    /// Creates a new key of `shape` for a tenant (created when missing) and returns the secret — the only
    /// time it exists outside the caller: the store keeps a SHA-256 hash.
    func createAPIKey(tenantName: String, shape: APIKeyShape) async throws -> (key: String, record: APIKeyRecord)
    /// The key's record when the secret matches a stored, unrevoked key.
    func authenticate(key: String) async throws -> APIKeyRecord?
    func revokeAPIKey(id: String) async throws

    // Sandboxes
    func insertSandbox(_ record: SandboxRecord) async throws
    /// Replaces the record (same id).
    func updateSandbox(_ record: SandboxRecord) async throws
    func sandbox(id: String) async throws -> SandboxRecord?
    func sandboxes(_ query: SandboxQuery) async throws -> Page<SandboxRecord>
    /// Every sandbox of every tenant in a non-final state (start-up reconciliation, reapers).
    func activeSandboxes() async throws -> [SandboxRecord]

    // Execs and logs
    func insertExec(_ record: ExecRecord) async throws
    func updateExec(_ record: ExecRecord) async throws
    func execs(sandboxId: String, limit: Int) async throws -> [ExecRecord]
    /// Appends output of an exec, keeping at most `cap` bytes per exec and stream (the head is kept).
    func appendLog(execId: String, stream: StdStream, data: [UInt8], cap: Int) async throws
    /// ``appendLog(execId:stream:data:cap:)`` of bytes that start at `offset` of the exec's
    /// stream, idempotent: the part the store already holds (its log reaches past `offset`) is
    /// skipped, so appending the same chunk again (a replay after an ambiguous failure) stores it once.
    func appendLog(execId: String, stream: StdStream, data: [UInt8], cap: Int, at offset: Int) async throws
    func log(execId: String, stream: StdStream) async throws -> [UInt8]

    // A sandbox's audit trail (append-only: no update or delete, sandbox records are never purged)
    /// Stores `events` in their order, numbering each sandbox's entries 1, 2, … (any `seq` the
    /// events carry is ignored). All or nothing; concurrent appenders, also on other nodes, never
    /// get the same number or leave a gap.
    func appendEvents(_ events: [AuditEvent]) async throws
    /// ``appendEvents(_:)`` under a batch key (kept on the batch's first row): when a batch with
    /// this key is already stored, nothing is done and the call succeeds, so a batch replayed after
    /// an ambiguous failure is stored once.
    func appendEvents(_ events: [AuditEvent], batch: String) async throws
    /// The sandbox's entries with `seq` greater than `after`, ascending, at most `limit` (1…10 000).
    func events(sandboxId: String, after seq: Int64, limit: Int) async throws -> [AuditEvent]

    // A tenant's audit trail (append-only, as a sandbox's)
    /// Stores `events` in their order under a batch key, numbering each tenant's entries 1, 2, …
    /// (any `seq` they carry is ignored); all or nothing, and nothing when the key is stored
    /// already (a replayed batch is stored once). Concurrent appenders never share a number.
    func appendTenantEvents(_ events: [TenantEvent], batch: String) async throws
    /// The tenant's entries with `seq` greater than `after`, ascending, at most `limit` (1…10 000).
    func tenantEvents(tenantId: String, after seq: Int64, limit: Int) async throws -> [TenantEvent]

    // Metering
    /// Stores usage samples; one whose id is stored already is skipped (a replay counts once).
    func appendUsage(_ samples: [UsageSample]) async throws
    /// The tenant's usage in the query's window, grouped: live sandboxes' samples (by their `at`)
    /// and finished runs (by their end: their result's CPU and wall time, and a count per final
    /// state), groups sorted by key.
    func usage(_ query: UsageQuery) async throws -> [UsageGroup]
}

extension SandboxStore {
    /// ``createAPIKey(tenantName:shape:)`` of a sandboxer-shaped key (`sbx_…`).
    public func createAPIKey(tenantName: String) async throws -> (key: String, record: APIKeyRecord) {
        try await createAPIKey(tenantName: tenantName, shape: .sandboxer)
    }
}
