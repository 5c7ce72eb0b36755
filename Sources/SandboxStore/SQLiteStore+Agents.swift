import Foundation
import GRDB
import SandboxCore

extension SQLiteStore: AgentStore {
    public func createAgent(_ agent: AgentRecord) async throws(SandboxError) -> AgentRecord {
        try await write("storing agent \(agent.name)") { db in
            // The UNIQUE (tenant_id, name) index decides: of two concurrent creates one inserts.
            try db.execute(
                sql: "INSERT INTO agents (id, tenant_id, name, created_at) VALUES (?, ?, ?, ?) ON CONFLICT(tenant_id, name) DO NOTHING",
                arguments: [agent.id, agent.tenantId, agent.name, agent.createdAt.column])
            if db.changesCount == 0 {
                let holder = try String.fetchOne(
                    db, sql: "SELECT id FROM agents WHERE tenant_id = ? AND name = ?", arguments: [agent.tenantId, agent.name])
                throw AgentRules.nameTaken(agent.name, by: holder ?? "?")
            }
            return agent
        }
    }

    public func agent(tenantId: String, id: String) async throws(SandboxError) -> AgentRecord? {
        try await read("reading agent \(id)") { db in
            try Row.fetchOne(db, sql: "SELECT * FROM agents WHERE tenant_id = ? AND id = ?", arguments: [tenantId, id]).map(Self.agent(from:))
        }
    }

    public func agents(tenantId: String, cursor: String?, limit: Int) async throws(SandboxError) -> Page<AgentRecord> {
        let limit = min(max(limit, 1), 1000)
        var sql = "SELECT * FROM agents WHERE tenant_id = ?"
        var args: [(any DatabaseValueConvertible)?] = [tenantId]
        if let cursor {
            let after = try PageCursor.sqliteCondition(cursor, newestFirst: false)
            sql += after.sql
            args += after.args
        }
        sql += " ORDER BY created_at, id LIMIT ?"
        args.append(limit + 1)
        let statementArgs = StatementArguments(args)
        let records = try await read("listing the agents of tenant \(tenantId)") { [sql] db in
            try Row.fetchAll(db, sql: sql, arguments: statementArgs).map(Self.agent(from:))
        }
        return Page.of(records, limit: limit) { PageCursor(createdAt: $0.createdAt.column, id: $0.id) }
    }

    public func putAgentVersion(_ version: AgentVersionRecord) async throws(SandboxError) -> (version: AgentVersionRecord, created: Bool) {
        let record = try JSONColumn.encode(version)
        return try await write("storing version \(version.digest) of agent \(version.agentId)") { db in
            try db.execute(
                sql: """
                    INSERT INTO agent_versions (agent_id, digest, tenant_id, record, created_at) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT(agent_id, digest) DO NOTHING
                    """,
                arguments: [version.agentId, version.digest, version.tenantId, record, version.createdAt.column])
            if db.changesCount > 0 { return (version, true) }
            guard let row = try Row.fetchOne(
                db, sql: "SELECT record FROM agent_versions WHERE agent_id = ? AND digest = ?", arguments: [version.agentId, version.digest])
            else { throw SandboxError(.system, "version \(version.digest) of agent \(version.agentId) vanished while it was stored; retry") }
            return (try JSONColumn.decode(AgentVersionRecord.self, row, "record"), false)
        }
    }

    public func agentVersion(tenantId: String, digest: String) async throws(SandboxError) -> AgentVersionRecord? {
        try await read("reading agent version \(digest)") { db in
            try Row.fetchOne(
                db, sql: "SELECT record FROM agent_versions WHERE tenant_id = ? AND digest = ? ORDER BY created_at, agent_id LIMIT 1",
                arguments: [tenantId, digest]
            ).map { try JSONColumn.decode(AgentVersionRecord.self, $0, "record") }
        }
    }

    public func agentVersion(tenantId: String, agentId: String, digest: String) async throws(SandboxError) -> AgentVersionRecord? {
        try await read("reading version \(digest) of agent \(agentId)") { db in
            try Row.fetchOne(
                db, sql: "SELECT record FROM agent_versions WHERE tenant_id = ? AND agent_id = ? AND digest = ?",
                arguments: [tenantId, agentId, digest]
            ).map { try JSONColumn.decode(AgentVersionRecord.self, $0, "record") }
        }
    }

    public func agentVersions(tenantId: String, agentId: String) async throws(SandboxError) -> [AgentVersionRecord] {
        try await read("listing the versions of agent \(agentId)") { db in
            try Row.fetchAll(
                db, sql: "SELECT record FROM agent_versions WHERE tenant_id = ? AND agent_id = ? ORDER BY created_at, digest",
                arguments: [tenantId, agentId]
            ).map { try JSONColumn.decode(AgentVersionRecord.self, $0, "record") }
        }
    }

    public func agentVersionInfos(tenantId: String, agentId: String) async throws(SandboxError) -> [AgentVersionInfo] {
        try await read("listing the versions of agent \(agentId)") { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT digest, json_extract(record, '$.status') AS status, json_extract(record, '$.size_bytes') AS size_bytes,
                        coalesce(json_extract(record, '$.profile'), 'bounty') AS profile, created_at
                    FROM agent_versions WHERE tenant_id = ? AND agent_id = ? ORDER BY created_at, digest
                    """, arguments: [tenantId, agentId]
            ).map { row in
                let text: String = try row.decode(forColumn: "status")
                guard let status = AgentVersionStatus(rawValue: text) else {
                    throw SandboxError(.system, "agent version \(row["digest"] as String? ?? "?") has unknown status '\(text)'; was it written by a newer sandboxer?")
                }
                return AgentVersionInfo(digest: try row.decode(forColumn: "digest"), status: status, sizeBytes: try row.decode(forColumn: "size_bytes"),
                                        profile: try row.decode(forColumn: "profile"), createdAt: try JSONColumn.date(row, "created_at"))
            }
        }
    }

    public func agentVersionCounts(tenantId: String) async throws(SandboxError) -> [String: Int] {
        try await read("counting the agent versions of tenant \(tenantId)") { db in
            var counts: [String: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT agent_id, COUNT(*) AS n FROM agent_versions WHERE tenant_id = ? GROUP BY agent_id",
                                        arguments: [tenantId]) {
                counts[try row.decode(String.self, forColumn: "agent_id")] = try row.decode(Int.self, forColumn: "n")
            }
            return counts
        }
    }

    static func agent(from row: Row) throws -> AgentRecord {
        AgentRecord(
            id: try row.decode(forColumn: "id"), tenantId: try row.decode(forColumn: "tenant_id"), name: try row.decode(forColumn: "name"),
            createdAt: try JSONColumn.date(row, "created_at"))
    }
}
