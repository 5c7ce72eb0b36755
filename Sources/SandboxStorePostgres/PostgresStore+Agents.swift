import Foundation
import PostgresNIO
import SandboxCore
import SandboxStore

extension PostgresStore {
    public func createAgent(_ agent: AgentRecord) async throws(SandboxError) -> AgentRecord {
        // The UNIQUE (tenant_id, name) constraint decides: of two concurrent creates (on any node) one inserts.
        let inserted = try await rows(
            "storing agent \(agent.name)",
            """
            INSERT INTO agents (id, tenant_id, name, created_at) VALUES (\(agent.id), \(agent.tenantId), \(agent.name), \(agent.createdAt.column))
            ON CONFLICT (tenant_id, name) DO NOTHING RETURNING id
            """)
        guard inserted.isEmpty else { return agent }
        let holder = try await fetch(
            "reading agent \(agent.name)", "SELECT id FROM agents WHERE tenant_id = \(agent.tenantId) AND name = \(agent.name)"
        ) { try $0.get("id", as: String.self) }.first
        throw AgentRules.nameTaken(agent.name, by: holder ?? "?")
    }

    public func agent(tenantId: String, id: String) async throws(SandboxError) -> AgentRecord? {
        try await fetch("reading agent \(id)", "SELECT * FROM agents WHERE tenant_id = \(tenantId) AND id = \(id)", Self.agent(from:)).first
    }

    public func agents(tenantId: String, cursor: String?, limit: Int) async throws(SandboxError) -> Page<AgentRecord> {
        let limit = min(max(limit, 1), 1000)
        let sql = try Listing(table: "agents", columns: "*", tenantId: tenantId, states: nil, since: nil,
                              pairsColumn: "", pairs: [:], cursor: cursor, newestFirst: false, limit: limit).query()
        let records = try await fetch("listing the agents of tenant \(tenantId)", sql, Self.agent(from:))
        return Page.of(records, limit: limit) { PageCursor(createdAt: $0.createdAt.column, id: $0.id) }
    }

    public func putAgentVersion(_ version: AgentVersionRecord) async throws(SandboxError) -> (version: AgentVersionRecord, created: Bool) {
        let record = try JSONColumn.encode(version)
        let what = "storing version \(version.digest) of agent \(version.agentId)"
        let inserted = try await rows(
            what,
            """
            INSERT INTO agent_versions (agent_id, digest, tenant_id, record, created_at)
            VALUES (\(version.agentId), \(version.digest), \(version.tenantId), \(record), \(version.createdAt.column))
            ON CONFLICT (agent_id, digest) DO NOTHING RETURNING digest
            """)
        if !inserted.isEmpty { return (version, true) }
        let stored = try await fetch(
            what, "SELECT record FROM agent_versions WHERE agent_id = \(version.agentId) AND digest = \(version.digest)", Self.version(from:)
        ).first
        guard let stored else {
            throw SandboxError(.system, "version \(version.digest) of agent \(version.agentId) vanished while it was stored; retry")
        }
        return (stored, false)
    }

    public func agentVersion(tenantId: String, digest: String) async throws(SandboxError) -> AgentVersionRecord? {
        try await fetch(
            "reading agent version \(digest)",
            """
            SELECT record FROM agent_versions WHERE tenant_id = \(tenantId) AND digest = \(digest)
            ORDER BY created_at, agent_id COLLATE "C" LIMIT 1
            """, Self.version(from:)
        ).first
    }

    public func agentVersion(tenantId: String, agentId: String, digest: String) async throws(SandboxError) -> AgentVersionRecord? {
        try await fetch(
            "reading version \(digest) of agent \(agentId)",
            "SELECT record FROM agent_versions WHERE tenant_id = \(tenantId) AND agent_id = \(agentId) AND digest = \(digest)",
            Self.version(from:)
        ).first
    }

    public func agentVersions(tenantId: String, agentId: String) async throws(SandboxError) -> [AgentVersionRecord] {
        try await fetch(
            "listing the versions of agent \(agentId)",
            "SELECT record FROM agent_versions WHERE tenant_id = \(tenantId) AND agent_id = \(agentId) ORDER BY created_at, digest COLLATE \"C\"",
            Self.version(from:))
    }

    public func agentVersionInfos(tenantId: String, agentId: String) async throws(SandboxError) -> [AgentVersionInfo] {
        try await fetch(
            "listing the versions of agent \(agentId)",
            """
            SELECT digest, record::jsonb->>'status' AS status, (record::jsonb->>'size_bytes')::bigint AS size_bytes,
                coalesce(record::jsonb->>'profile', 'bounty') AS profile, created_at
            FROM agent_versions WHERE tenant_id = \(tenantId) AND agent_id = \(agentId) ORDER BY created_at, digest COLLATE "C"
            """
        ) { row in
            let text = try row.get("status", as: String.self)
            guard let status = AgentVersionStatus(rawValue: text) else {
                throw SandboxError(.system, "an agent version has unknown status '\(text)'; was it written by a newer sandboxer?")
            }
            return AgentVersionInfo(digest: try row.get("digest"), status: status, sizeBytes: Int(try row.get("size_bytes", as: Int64.self)),
                                    profile: try row.get("profile"), createdAt: try row.date("created_at"))
        }
    }

    public func agentVersionCounts(tenantId: String) async throws(SandboxError) -> [String: Int] {
        let rows = try await fetch(
            "counting the agent versions of tenant \(tenantId)",
            "SELECT agent_id, COUNT(*) AS n FROM agent_versions WHERE tenant_id = \(tenantId) GROUP BY agent_id"
        ) { row in (try row.get("agent_id", as: String.self), Int(try row.get("n", as: Int64.self))) }
        return Dictionary(rows, uniquingKeysWith: { a, _ in a })
    }

    static func agent(from row: PostgresRandomAccessRow) throws -> AgentRecord {
        AgentRecord(id: try row.get("id"), tenantId: try row.get("tenant_id"), name: try row.get("name"), createdAt: try row.date("created_at"))
    }

    static func version(from row: PostgresRandomAccessRow) throws -> AgentVersionRecord {
        try JSONColumn.decode(AgentVersionRecord.self, text: try row.get("record"), what: "an agent version")
    }
}
