import Foundation
import GRDB
import Logging
import SandboxCore
import Synchronization

/// The embedded ``SandboxStore``: one SQLite file in WAL mode (`<data>/sandboxer.db`) through a
/// GRDB `DatabasePool`. Reads run in parallel; writes are serialized by GRDB on its own queue
/// (the calling task suspends, no cooperative thread blocks), and across processes by SQLite's
/// file locks with a busy timeout — so the server and `sandboxer key create` can share one file.
public final class SQLiteStore: SandboxStore {
    /// The data directory.
    public let directory: String
    /// The database file.
    public let path: String
    let pool: DatabasePool
    let logger: Logger
    /// Logs known to be at their cap (exec id + stream), so appends past it touch no database.
    let fullLogs = Mutex(Set<String>())
    /// Run changes of this process (``RunStore/runChanges()``).
    let changes = RunChangeHub()
    public let health: StoreHealth
    /// Keys checked lately, accepted while the disk cannot be read (``KnownKeys``).
    let knownKeys = KnownKeys()

    /// Opens (creating when missing) the store in `directory` and brings its schema up to date.
    /// Blocks the calling thread while it migrates; call once at start-up. `callDeadline`: how
    /// long one call may wait at most before it counts as no answer (``StoreHealth/deadline``).
    public init(directory: String, busyTimeout: TimeInterval = 10, callDeadline: Duration = .seconds(30),
                logger: Logger = Logger(label: "sandboxer.store")) throws(SandboxError)
    {
        self.directory = directory
        self.logger = logger
        let path = try StoreFiles.prepare(directory: directory, logger: logger)
        self.path = path
        // Writers queue on the local disk (and on other processes' locks): a long wait is load, not
        // an outage, so the probe (a write) may take the busy timeout; a full or read-only disk
        // fails at once.
        health = StoreHealth(name: "SQLite at \(path)", failsFast: false, deadline: callDeadline, probeDeadline: .seconds(max(busyTimeout, 2)), logger: logger)
        var config = Configuration()
        config.label = "sandboxer.store"
        config.busyMode = .timeout(busyTimeout)
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        do {
            pool = try DatabasePool(path: path, configuration: config)
            try Schema.migrator.migrate(pool)
        } catch {
            throw StoreError.map(error, doing: "opening the store", path: path)
        }
        let pool = self.pool
        let directory = self.directory
        health.attach { [path] in
            // Space for more than a probe's row (a reused WAL could take that on a full disk), then a write.
            var fs = statvfs()
            if statvfs(directory, &fs) == 0, UInt64(fs.f_bavail) * UInt64(fs.f_frsize) < 1 << 20 {
                throw SandboxError(.insufficientStorage, "the disk holding \(path) has less than 1 MiB free")
            }
            do {
                try await pool.write { db in
                    try db.execute(sql: "INSERT INTO store_probe (at) VALUES (?)", arguments: [Date().timeIntervalSince1970])
                    try db.execute(sql: "DELETE FROM store_probe")
                }
            } catch { throw StoreError.map(error, doing: "probing the store", path: path) }
        }
        logger.debug("store open", metadata: ["path": "\(path)"])
    }

    /// SQLite here runs in WAL mode with `synchronous = FULL`: every commit is fsync'ed before it
    /// is acknowledged, so a 201/202 survives a crash of the process or the machine.
    public func durability() async throws(SandboxError) -> StoreDurability {
        let (mode, sync) = try await read("reading the durability settings") { db in
            (try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "?", try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1)
        }
        let names = [0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"]
        let durable = sync >= 2
        return StoreDurability(
            name: health.name, durable: durable,
            detail: "journal_mode=\(mode), synchronous=\(names[sync] ?? "\(sync)")" + (durable
                ? ": every commit is on disk before a 201/202"
                : ": a crash of the machine can lose the last commits"))
    }

    /// Closes the database; later calls fail with `invalid_state`. Pending writes finish first.
    public func close() throws(SandboxError) {
        health.close()
        changes.finish()
        do { try pool.close() } catch { throw StoreError.map(error, doing: "closing the store", path: path) }
    }

    func write<T: Sendable>(_ what: String, _ body: @escaping @Sendable (Database) throws -> T) async throws(SandboxError) -> T {
        let (pool, path) = (self.pool, self.path)
        return try await health.run(what) { () async throws(SandboxError) -> T in
            do { return try await pool.write(body) } catch { throw StoreError.map(error, doing: what, path: path) }
        }
    }

    func read<T: Sendable>(_ what: String, _ body: @escaping @Sendable (Database) throws -> T) async throws(SandboxError) -> T {
        let (pool, path) = (self.pool, self.path)
        return try await health.run(what) { () async throws(SandboxError) -> T in
            do { return try await pool.read(body) } catch { throw StoreError.map(error, doing: what, path: path) }
        }
    }

    // MARK: Tenants and keys

    public func ensureTenant(name: String) async throws -> Tenant {
        let fresh = try TenantRules.fresh(name: name)
        let quota = try JSONColumn.encode(fresh.overrides)
        return try await write("creating tenant \(name)") { db in
            try Self.ensureTenant(db, fresh, quota: quota)
        }
    }

    public func tenant(id: String) async throws -> Tenant? {
        try await read("reading tenant \(id)") { db in
            try Row.fetchOne(db, sql: "SELECT * FROM tenants WHERE id = ?", arguments: [id]).map(Self.tenant(from:))
        }
    }

    public func tenant(name: String) async throws -> Tenant? {
        try await read("reading tenant \(name)") { db in
            try Row.fetchOne(db, sql: "SELECT * FROM tenants WHERE name = ?", arguments: [name]).map(Self.tenant(from:))
        }
    }

    public func tenants() async throws -> [Tenant] {
        try await read("listing tenants") { db in
            try Row.fetchAll(db, sql: "SELECT * FROM tenants ORDER BY name").map(Self.tenant(from:))
        }
    }

    public func setQuota(tenantId: String, _ overrides: QuotaOverrides) async throws {
        let text = try JSONColumn.encode(overrides)
        let changed = try await write("setting the quota of tenant \(tenantId)") { db in
            try db.execute(sql: "UPDATE tenants SET quota = ? WHERE id = ?", arguments: [text, tenantId])
            return db.changesCount
        }
        if changed == 0 { throw SandboxError(.notFound, "no tenant \(tenantId)") }
    }

    public func createAPIKey(tenantName: String, shape: APIKeyShape) async throws -> (key: String, record: APIKeyRecord) {
        let fresh = try TenantRules.fresh(name: tenantName)
        let quota = try JSONColumn.encode(fresh.overrides)
        let (id, key) = APIKeyText.generate(shape)
        let hash = APIKeyText.hash(key)
        let record = try await write("creating an API key for tenant \(tenantName)") { db in
            let tenant = try Self.ensureTenant(db, fresh, quota: quota)
            let record = APIKeyRecord(id: id, tenantId: tenant.id)
            try db.execute(
                sql: "INSERT INTO api_keys (id, tenant_id, hash, created_at, revoked) VALUES (?, ?, ?, ?, 0)",
                arguments: [record.id, record.tenantId, hash, record.createdAt.timeIntervalSinceReferenceDate])
            return record
        }
        logger.info("API key created", metadata: ["key": "\(id)", "tenant": "\(tenantName)"])
        return (key, record)
    }

    public func authenticate(key: String) async throws -> APIKeyRecord? {
        guard let id = APIKeyText.keyID(of: key) else { return nil }
        let hash = APIKeyText.hash(key)
        return try await knownKeys.authenticate(key) {
            try await read("checking an API key") { db in
                guard let row = try Row.fetchOne(db, sql: "SELECT * FROM api_keys WHERE id = ?", arguments: [id]) else { return nil }
                let stored: Data = try row.decode(forColumn: "hash")
                guard APIKeyText.constantTimeEqual(stored, hash) else { return nil }
                let record = try Self.apiKey(from: row)
                return record.revoked ? nil : record
            }
        }
    }

    /// Revokes a key by its id (`key_…`); a whole key is accepted too.
    public func revokeAPIKey(id given: String) async throws {
        let id = APIKeyText.keyID(of: given) ?? given
        let changed = try await write("revoking API key \(id)") { db in
            try db.execute(sql: "UPDATE api_keys SET revoked = 1 WHERE id = ?", arguments: [id])
            return db.changesCount
        }
        knownKeys.forget(keyID: id)
        guard changed > 0 else {
            throw SandboxError(.notFound, "no API key '\(id)'; `sandboxer key list` shows the key ids (key_…)")
        }
        logger.info("API key revoked", metadata: ["key": "\(id)"])
    }

    /// Every API key (never a secret) with its tenant's name, oldest first; only `tenantName`'s
    /// when given.
    public func apiKeys(tenantName: String? = nil) async throws(SandboxError) -> [(record: APIKeyRecord, tenant: String)] {
        try await read("listing API keys") { db in
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT k.*, t.name AS tenant_name FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
                    WHERE ?1 IS NULL OR t.name = ?1 ORDER BY k.created_at, k.id
                    """, arguments: [tenantName])
            return try rows.map { row in (try Self.apiKey(from: row), try row.decode(String.self, forColumn: "tenant_name")) }
        }
    }

    static func ensureTenant(_ db: Database, _ fresh: Tenant, quota: String) throws -> Tenant {
        try db.execute(
            sql: "INSERT INTO tenants (id, name, created_at, quota) VALUES (?, ?, ?, ?) ON CONFLICT(name) DO NOTHING",
            arguments: [fresh.id, fresh.name, fresh.createdAt.timeIntervalSinceReferenceDate, quota])
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM tenants WHERE name = ?", arguments: [fresh.name]) else {
            throw SandboxError(.system, "tenant \(fresh.name) vanished while it was created; retry")
        }
        return try tenant(from: row)
    }

    static func tenant(from row: Row) throws -> Tenant {
        Tenant(
            id: try row.decode(forColumn: "id"), name: try row.decode(forColumn: "name"),
            createdAt: try JSONColumn.date(row, "created_at"),
            overrides: try JSONColumn.decode(QuotaOverrides.self, row, "quota"))
    }

    static func apiKey(from row: Row) throws -> APIKeyRecord {
        APIKeyRecord(
            id: try row.decode(forColumn: "id"), tenantId: try row.decode(forColumn: "tenant_id"),
            createdAt: try JSONColumn.date(row, "created_at"), revoked: try row.decode(Bool.self, forColumn: "revoked"))
    }
}
