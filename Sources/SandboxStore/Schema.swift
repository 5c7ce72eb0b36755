import GRDB

/// The store's schema as GRDB migrations. Dates are REAL seconds since 2001-01-01 (Foundation's
/// reference date, exact for `Date`); nested values (profile, metadata, usage, quota, argv) are
/// JSON text. Add a new migration for every change; never edit a shipped one.
enum Schema {
    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE tenants (
                    id TEXT PRIMARY KEY NOT NULL,
                    name TEXT NOT NULL UNIQUE,
                    created_at REAL NOT NULL,
                    quota TEXT NOT NULL
                );
                CREATE TABLE api_keys (
                    id TEXT PRIMARY KEY NOT NULL,
                    tenant_id TEXT NOT NULL REFERENCES tenants(id),
                    hash BLOB NOT NULL,
                    created_at REAL NOT NULL,
                    revoked INTEGER NOT NULL DEFAULT 0
                );
                CREATE INDEX api_keys_tenant ON api_keys(tenant_id);
                CREATE TABLE sandboxes (
                    id TEXT PRIMARY KEY NOT NULL,
                    tenant_id TEXT NOT NULL,
                    state TEXT NOT NULL,
                    profile TEXT NOT NULL,
                    created_at REAL NOT NULL,
                    updated_at REAL NOT NULL,
                    expires_at REAL,
                    idle_timeout_seconds REAL,
                    last_activity_at REAL NOT NULL,
                    metadata TEXT NOT NULL,
                    reason TEXT,
                    node TEXT NOT NULL,
                    exec_count INTEGER NOT NULL,
                    cpu_ms REAL NOT NULL
                );
                CREATE INDEX sandboxes_tenant_created ON sandboxes(tenant_id, created_at, id);
                CREATE INDEX sandboxes_state ON sandboxes(state);
                CREATE TABLE execs (
                    id TEXT PRIMARY KEY NOT NULL,
                    sandbox_id TEXT NOT NULL,
                    tenant_id TEXT NOT NULL,
                    argv TEXT NOT NULL,
                    started_at REAL NOT NULL,
                    ended_at REAL,
                    outcome TEXT,
                    exit_code INTEGER,
                    usage TEXT,
                    reason TEXT
                );
                CREATE INDEX execs_sandbox_started ON execs(sandbox_id, started_at);
                CREATE TABLE exec_logs (
                    exec_id TEXT NOT NULL,
                    stream TEXT NOT NULL,
                    seq INTEGER NOT NULL,
                    end_offset INTEGER NOT NULL,
                    data BLOB NOT NULL,
                    PRIMARY KEY (exec_id, stream, seq)
                );
                CREATE TABLE audit (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    at REAL NOT NULL,
                    tenant_id TEXT NOT NULL,
                    actor TEXT NOT NULL,
                    action TEXT NOT NULL,
                    target TEXT NOT NULL,
                    result TEXT NOT NULL,
                    detail TEXT
                );
                CREATE INDEX audit_tenant ON audit(tenant_id, id);
                """)
        }
        // The run queue: the whole record is the JSON document `doc`; the columns the queue
        // selects and orders by are kept beside it.
        m.registerMigration("v2-runs") { db in
            try db.execute(sql: """
                CREATE TABLE runs (
                    id TEXT PRIMARY KEY NOT NULL,
                    tenant_id TEXT NOT NULL,
                    state TEXT NOT NULL,
                    priority INTEGER NOT NULL,
                    created_at REAL NOT NULL,
                    ended_at REAL,
                    not_before REAL NOT NULL,
                    idempotency_key TEXT,
                    lease_worker TEXT,
                    lease_expires_at REAL,
                    cancel_requested INTEGER NOT NULL DEFAULT 0,
                    webhook_state TEXT,
                    webhook_next_at REAL,
                    doc TEXT NOT NULL
                );
                CREATE UNIQUE INDEX runs_idempotency ON runs(tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
                CREATE INDEX runs_queue ON runs(state, tenant_id, priority DESC, created_at);
                CREATE INDEX runs_tenant_created ON runs(tenant_id, created_at DESC, id DESC);
                CREATE INDEX runs_lease ON runs(state, lease_expires_at);
                CREATE INDEX runs_webhook ON runs(webhook_state, webhook_next_at);
                CREATE INDEX runs_ended ON runs(tenant_id, ended_at);
                CREATE TABLE run_logs (
                    run_id TEXT NOT NULL,
                    attempt INTEGER NOT NULL,
                    seq INTEGER NOT NULL,
                    stream TEXT NOT NULL,
                    end_offset INTEGER NOT NULL,
                    data BLOB NOT NULL,
                    PRIMARY KEY (run_id, attempt, seq)
                );
                CREATE TABLE webhook_deliveries (
                    run_id TEXT NOT NULL,
                    number INTEGER NOT NULL,
                    at REAL NOT NULL,
                    status INTEGER,
                    error TEXT,
                    duration_ms REAL NOT NULL,
                    PRIMARY KEY (run_id, number)
                );
                """)
        }
        // Each sandbox's audit trail: entries numbered per sandbox, never updated or deleted.
        m.registerMigration("v3-sandbox-events") { db in
            try db.execute(sql: """
                CREATE TABLE sandbox_events (
                    sandbox_id TEXT NOT NULL,
                    seq INTEGER NOT NULL,
                    at REAL NOT NULL,
                    kind TEXT NOT NULL,
                    actor TEXT NOT NULL,
                    correlation TEXT,
                    detail TEXT NOT NULL,
                    PRIMARY KEY (sandbox_id, seq)
                );
                """)
        }
        // Operator-configured secrets (server-wide): hosts as a JSON array, the value sealed by SecretBox.
        m.registerMigration("v4-secrets") { db in
            try db.execute(sql: """
                CREATE TABLE secrets (
                    name TEXT PRIMARY KEY NOT NULL,
                    hosts TEXT NOT NULL,
                    header TEXT,
                    sealed BLOB NOT NULL,
                    created_at REAL NOT NULL,
                    updated_at REAL NOT NULL
                );
                """)
        }
        // Secrets belong to a tenant or are shared ('*'); those set before scopes existed were
        // server-wide, so they stay shared.
        m.registerMigration("v5-secret-scopes") { db in
            try db.execute(sql: """
                CREATE TABLE secrets_scoped (
                    scope TEXT NOT NULL,
                    name TEXT NOT NULL,
                    hosts TEXT NOT NULL,
                    header TEXT,
                    sealed BLOB NOT NULL,
                    created_at REAL NOT NULL,
                    updated_at REAL NOT NULL,
                    PRIMARY KEY (scope, name)
                );
                INSERT INTO secrets_scoped SELECT '*', name, hosts, header, sealed, created_at, updated_at FROM secrets;
                DROP TABLE secrets;
                ALTER TABLE secrets_scoped RENAME TO secrets;
                """)
        }
        // The health prober's write (one row, deleted in the same transaction).
        m.registerMigration("v6-store-probe") { db in
            try db.execute(sql: "CREATE TABLE store_probe (at REAL NOT NULL)")
        }
        // The key of a batch of trail entries, on its first row: a replayed batch (the recorder's
        // spool after an outage) is stored once.
        m.registerMigration("v7-event-batches") { db in
            try db.execute(sql: """
                ALTER TABLE sandbox_events ADD COLUMN batch TEXT;
                CREATE UNIQUE INDEX sandbox_events_batch ON sandbox_events(batch);
                """)
        }
        // One audit system: the tenant's trail, numbered per tenant like a sandbox's. The route
        // audit log it replaces moves in as `api.request` entries (action, target, result, detail).
        m.registerMigration("v8-tenant-audit") { db in
            try db.execute(sql: """
                CREATE TABLE tenant_events (
                    tenant_id TEXT NOT NULL,
                    seq INTEGER NOT NULL,
                    at REAL NOT NULL,
                    kind TEXT NOT NULL,
                    actor TEXT NOT NULL,
                    sandbox_id TEXT,
                    correlation TEXT,
                    detail TEXT NOT NULL,
                    batch TEXT,
                    PRIMARY KEY (tenant_id, seq)
                );
                CREATE UNIQUE INDEX tenant_events_batch ON tenant_events(batch);
                INSERT INTO tenant_events (tenant_id, seq, at, kind, actor, detail)
                    SELECT tenant_id, row_number() OVER (PARTITION BY tenant_id ORDER BY id), at, 'api.request', actor,
                        CASE WHEN detail IS NULL THEN json_object('action', action, 'target', target, 'result', result)
                             ELSE json_object('action', action, 'target', target, 'result', result, 'detail', detail) END
                    FROM audit;
                DROP TABLE audit;
                """)
        }
        // Metering: what live sandboxes used between the meter's samples (deltas; runs are summed
        // from their records). The id makes a replayed sample count once.
        m.registerMigration("v9-usage") { db in
            try db.execute(sql: """
                CREATE TABLE usage_samples (
                    id TEXT PRIMARY KEY NOT NULL,
                    tenant_id TEXT NOT NULL,
                    sandbox_id TEXT NOT NULL,
                    at REAL NOT NULL,
                    sandbox_seconds REAL NOT NULL,
                    cpu_seconds REAL NOT NULL,
                    memory_gib_seconds REAL NOT NULL,
                    egress_bytes_in INTEGER NOT NULL,
                    egress_bytes_out INTEGER NOT NULL,
                    execs INTEGER NOT NULL
                );
                CREATE INDEX usage_samples_tenant_at ON usage_samples(tenant_id, at);
                """)
        }
        // A tenant's quota column holds only what the operator set; the old defaults, stored in
        // full for every tenant, become "none set" (the server's defaults apply).
        m.registerMigration("v10-quota-overrides") { db in
            try db.execute(sql: "UPDATE tenants SET quota = '{}' WHERE quota = ?", arguments: [TenantRules.legacyDefaultQuota])
        }
        // The image a sandbox's root was made from (issue 19): its manifest digest.
        m.registerMigration("v11-sandbox-template-digest") { db in
            try db.execute(sql: "ALTER TABLE sandboxes ADD COLUMN template_digest TEXT")
        }
        // Access through E2B's sandbox plane (issue 20): `secure` and the hashes of the envd
        // access tokens handed out (JSON; NULL for sandboxes created through /v1).
        m.registerMigration("v12-sandbox-envd-access") { db in
            try db.execute(sql: "ALTER TABLE sandboxes ADD COLUMN envd_access TEXT")
        }
        // The agent registry (issue 21): names unique per tenant (the index, not a read, refuses a
        // duplicate); a version is its JSON record, immutable, keyed by agent and digest.
        m.registerMigration("v13-agents") { db in
            try db.execute(sql: """
                CREATE TABLE agents (
                    id TEXT PRIMARY KEY NOT NULL,
                    tenant_id TEXT NOT NULL,
                    name TEXT NOT NULL,
                    created_at REAL NOT NULL,
                    UNIQUE (tenant_id, name)
                );
                CREATE INDEX agents_tenant_created ON agents(tenant_id, created_at, id);
                CREATE TABLE agent_versions (
                    agent_id TEXT NOT NULL,
                    digest TEXT NOT NULL,
                    tenant_id TEXT NOT NULL,
                    record TEXT NOT NULL,
                    created_at REAL NOT NULL,
                    PRIMARY KEY (agent_id, digest)
                );
                CREATE INDEX agent_versions_tenant_digest ON agent_versions(tenant_id, digest, created_at);
                """)
        }
        // Bounties and their submissions (issue 21): the record as JSON beside the columns queried.
        m.registerMigration("v14-bounties") { db in
            try db.execute(sql: """
                CREATE TABLE bounties (
                    id TEXT PRIMARY KEY NOT NULL,
                    tenant_id TEXT NOT NULL,
                    created_at REAL NOT NULL,
                    record TEXT NOT NULL
                );
                CREATE INDEX bounties_tenant_created ON bounties(tenant_id, created_at, id);
                CREATE TABLE submissions (
                    id TEXT PRIMARY KEY NOT NULL,
                    tenant_id TEXT NOT NULL,
                    bounty_id TEXT NOT NULL,
                    state TEXT NOT NULL,
                    created_at REAL NOT NULL,
                    updated_at REAL NOT NULL,
                    record TEXT NOT NULL
                );
                CREATE INDEX submissions_bounty_created ON submissions(tenant_id, bounty_id, created_at, id);
                CREATE INDEX submissions_state ON submissions(state);
                """)
        }
        return m
    }
}
