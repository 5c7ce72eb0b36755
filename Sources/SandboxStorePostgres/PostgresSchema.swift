import Foundation
import Logging
import SandboxStore
import PostgresNIO
import SandboxCore

/// The PostgreSQL schema as named migrations, recorded in `schema_migrations`. Migrating holds a
/// session advisory lock, so processes starting at once migrate one after the other. Dates are
/// DOUBLE PRECISION seconds since 2001-01-01 (as in SQLite: exact for `Date`, the same page
/// cursors); sandbox, exec and run records are their JSON document, beside the columns queries
/// select and order by (a run's lease and cancel flag live only in their columns, as in SQLite). Add a migration for every change; never edit a shipped one.
enum PostgresSchema {
    /// `pg_advisory_lock` key of migrations ("sbxmigr" as a number).
    static let lockKey: Int64 = 0x7362_786D_6967_72

    static let migrations: [(version: String, statements: [String])] = [
        ("v1", [
            """
            CREATE TABLE tenants (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE,
                created_at DOUBLE PRECISION NOT NULL, quota TEXT NOT NULL)
            """,
            """
            CREATE TABLE api_keys (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id),
                hash BYTEA NOT NULL, created_at DOUBLE PRECISION NOT NULL, revoked BOOLEAN NOT NULL DEFAULT false)
            """,
            "CREATE INDEX api_keys_tenant ON api_keys(tenant_id)",
            """
            CREATE TABLE sandboxes (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, state TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL, metadata JSONB NOT NULL, record TEXT NOT NULL)
            """,
            "CREATE INDEX sandboxes_tenant_created ON sandboxes(tenant_id, created_at, id)",
            "CREATE INDEX sandboxes_state ON sandboxes(state)",
            """
            CREATE TABLE execs (id TEXT PRIMARY KEY, sandbox_id TEXT NOT NULL,
                started_at DOUBLE PRECISION NOT NULL, record TEXT NOT NULL)
            """,
            "CREATE INDEX execs_sandbox_started ON execs(sandbox_id, started_at)",
            """
            CREATE TABLE exec_logs (exec_id TEXT NOT NULL, stream TEXT NOT NULL, seq INTEGER NOT NULL,
                end_offset INTEGER NOT NULL, data BYTEA NOT NULL, PRIMARY KEY (exec_id, stream, seq))
            """,
            """
            CREATE TABLE audit (id BIGSERIAL PRIMARY KEY, at DOUBLE PRECISION NOT NULL, tenant_id TEXT NOT NULL,
                actor TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL, result TEXT NOT NULL, detail TEXT)
            """,
            "CREATE INDEX audit_tenant ON audit(tenant_id, id)",
            """
            CREATE TABLE runs (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, state TEXT NOT NULL, priority INTEGER NOT NULL,
                created_at DOUBLE PRECISION NOT NULL, ended_at DOUBLE PRECISION, not_before DOUBLE PRECISION NOT NULL,
                idempotency_key TEXT, lease_worker TEXT, lease_expires_at DOUBLE PRECISION,
                cancel_requested BOOLEAN NOT NULL DEFAULT false, webhook_state TEXT, webhook_next_at DOUBLE PRECISION,
                labels JSONB NOT NULL, doc TEXT NOT NULL)
            """,
            "CREATE UNIQUE INDEX runs_idempotency ON runs(tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL",
            "CREATE INDEX runs_tenant_created ON runs(tenant_id, created_at DESC, id DESC)",
            "CREATE INDEX runs_queued ON runs(tenant_id, priority DESC, created_at, id) WHERE state = 'queued'",
            "CREATE INDEX runs_due ON runs(not_before) WHERE state = 'queued'",
            "CREATE INDEX runs_running ON runs(tenant_id, lease_expires_at) WHERE state = 'running'",
            "CREATE INDEX runs_webhooks ON runs(webhook_next_at) WHERE webhook_state = 'pending'",
            "CREATE INDEX runs_ended ON runs(tenant_id, ended_at) WHERE ended_at IS NOT NULL",
            """
            CREATE TABLE run_logs (run_id TEXT NOT NULL, attempt INTEGER NOT NULL, seq INTEGER NOT NULL,
                stream TEXT NOT NULL, end_offset INTEGER NOT NULL, data BYTEA NOT NULL, PRIMARY KEY (run_id, attempt, seq))
            """,
            """
            CREATE TABLE webhook_deliveries (run_id TEXT NOT NULL, number INTEGER NOT NULL, at DOUBLE PRECISION NOT NULL,
                status INTEGER, error TEXT, duration_ms DOUBLE PRECISION NOT NULL, PRIMARY KEY (run_id, number))
            """,
        ]),
        // Each sandbox's audit trail: entries numbered per sandbox, never updated or deleted.
        ("v3-sandbox-events", [
            """
            CREATE TABLE sandbox_events (sandbox_id TEXT NOT NULL, seq BIGINT NOT NULL, at DOUBLE PRECISION NOT NULL,
                kind TEXT NOT NULL, actor TEXT NOT NULL, correlation TEXT, detail TEXT NOT NULL, PRIMARY KEY (sandbox_id, seq))
            """,
        ]),
        ("v4-secrets", [
            """
            CREATE TABLE secrets (name TEXT PRIMARY KEY, hosts TEXT NOT NULL, header TEXT, sealed BYTEA NOT NULL,
                created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL)
            """,
        ]),
        // A tenant's own secrets, or shared ('*'); those from before stay shared.
        ("v5-secret-scopes", [
            "ALTER TABLE secrets ADD COLUMN scope TEXT NOT NULL DEFAULT '*'",
            "ALTER TABLE secrets DROP CONSTRAINT secrets_pkey",
            "ALTER TABLE secrets ADD PRIMARY KEY (scope, name)",
        ]),
        // The key of a batch of trail entries, on its first row: a replayed batch is stored once.
        ("v7-event-batches", [
            "ALTER TABLE sandbox_events ADD COLUMN batch TEXT",
            "CREATE UNIQUE INDEX sandbox_events_batch ON sandbox_events(batch) WHERE batch IS NOT NULL",
        ]),
        // One audit system: the tenant's trail; the route audit log moves in as `api.request` entries.
        ("v8-tenant-audit", [
            """
            CREATE TABLE tenant_events (tenant_id TEXT NOT NULL, seq BIGINT NOT NULL, at DOUBLE PRECISION NOT NULL,
                kind TEXT NOT NULL, actor TEXT NOT NULL, sandbox_id TEXT, correlation TEXT, detail TEXT NOT NULL, batch TEXT,
                PRIMARY KEY (tenant_id, seq))
            """,
            "CREATE UNIQUE INDEX tenant_events_batch ON tenant_events(batch) WHERE batch IS NOT NULL",
            """
            INSERT INTO tenant_events (tenant_id, seq, at, kind, actor, detail)
                SELECT tenant_id, row_number() OVER (PARTITION BY tenant_id ORDER BY id), at, 'api.request', actor,
                    jsonb_strip_nulls(jsonb_build_object('action', action, 'target', target, 'result', result, 'detail', detail))::text
                FROM audit
            """,
            "DROP TABLE audit",
        ]),
        // Metering: live sandboxes' usage between the meter's samples (deltas); the id makes a replay count once.
        ("v9-usage", [
            """
            CREATE TABLE usage_samples (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, sandbox_id TEXT NOT NULL,
                at DOUBLE PRECISION NOT NULL, sandbox_seconds DOUBLE PRECISION NOT NULL, cpu_seconds DOUBLE PRECISION NOT NULL,
                memory_gib_seconds DOUBLE PRECISION NOT NULL, egress_bytes_in BIGINT NOT NULL, egress_bytes_out BIGINT NOT NULL,
                execs BIGINT NOT NULL)
            """,
            "CREATE INDEX usage_samples_tenant_at ON usage_samples(tenant_id, at)",
        ]),
        // A tenant's quota holds only what the operator set (the old defaults become "none set").
        ("v10-quota-overrides", [
            "UPDATE tenants SET quota = '{}' WHERE quota = '\(TenantRules.legacyDefaultQuota)'",
        ]),
        // The agent registry (issue 21): names unique per tenant (the constraint, not a read, refuses
        // a duplicate); a version is its JSON record, immutable, keyed by agent and digest.
        ("v13-agents", [
            """
            CREATE TABLE agents (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, name TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL, UNIQUE (tenant_id, name))
            """,
            "CREATE INDEX agents_tenant_created ON agents(tenant_id, created_at, id)",
            """
            CREATE TABLE agent_versions (agent_id TEXT NOT NULL, digest TEXT NOT NULL, tenant_id TEXT NOT NULL,
                record TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (agent_id, digest))
            """,
            "CREATE INDEX agent_versions_tenant_digest ON agent_versions(tenant_id, digest, created_at)",
        ]),
        // Bounties and their submissions (issue 21): the record as JSON beside the columns queried.
        ("v14-bounties", [
            """
            CREATE TABLE bounties (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
                record TEXT NOT NULL)
            """,
            "CREATE INDEX bounties_tenant_created ON bounties(tenant_id, created_at, id)",
            """
            CREATE TABLE submissions (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, bounty_id TEXT NOT NULL, state TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL, record TEXT NOT NULL)
            """,
            "CREATE INDEX submissions_bounty_created ON submissions(tenant_id, bounty_id, created_at, id)",
            "CREATE INDEX submissions_state ON submissions(state)",
        ]),
    ]

    /// Connects once, outside the pool (a wrong URL fails here with the URL in the message), and
    /// applies the missing migrations.
    static func migrate(url: PostgresURL, logger: Logger) async throws(SandboxError) {
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(configuration: try url.connectionConfiguration(), id: 0, logger: logger)
        } catch {
            throw PostgresError.map(error, doing: "opening the store", url: url.display)
        }
        do {
            try await connection.query("SELECT pg_advisory_lock(\(lockKey))", logger: logger)
            try await connection.query(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)",
                logger: logger)
            let done = Set(try await connection.rows("SELECT version FROM schema_migrations", logger).map { try $0.get("version", as: String.self) })
            for migration in migrations where !done.contains(migration.version) {
                try await connection.query("BEGIN", logger: logger)
                for statement in migration.statements {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (\(migration.version), \(Date().column))", logger: logger)
                try await connection.query("COMMIT", logger: logger)
                logger.info("store schema migrated", metadata: ["version": "\(migration.version)", "url": "\(url.display)"])
            }
            try await connection.query("SELECT pg_advisory_unlock(\(lockKey))", logger: logger)
            try await connection.close()
        } catch {
            try? await connection.close()
            throw PostgresError.map(error, doing: "migrating the store's schema", url: url.display)
        }
    }
}
