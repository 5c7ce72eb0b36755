import Foundation
import PostgresNIO
import SandboxCore
import SandboxStore

/// Bounties and submissions on PostgreSQL: as on SQLite, the record's JSON beside the columns
/// queried; a submission is replaced only while its `updated_at` is the one its writer read.
extension PostgresStore {
    public func createBounty(_ bounty: BountyRecord) async throws -> BountyRecord {
        let json = try JSONColumn.encode(bounty)
        let inserted = try await rows(
            "storing bounty \(bounty.id)",
            """
            INSERT INTO bounties (id, tenant_id, created_at, record) VALUES (\(bounty.id), \(bounty.tenantId), \(bounty.createdAt.column), \(json))
            ON CONFLICT (id) DO NOTHING RETURNING id
            """)
        if inserted.isEmpty { throw SandboxError(.invalidState, "bounty \(bounty.id) is already stored; pick a new id") }
        return bounty
    }

    public func bounty(tenantId: String, id: String) async throws -> BountyRecord? {
        try await fetch("reading bounty \(id)", "SELECT record FROM bounties WHERE id = \(id) AND tenant_id = \(tenantId)") { row in
            try JSONColumn.decode(BountyRecord.self, text: try row.get("record"), what: "bounty \(id)")
        }.first
    }

    public func bounties(tenantId: String, limit: Int) async throws -> [BountyRecord] {
        let limit = min(max(limit, 1), 10_000)
        return try await fetch(
            "listing bounties", "SELECT record FROM bounties WHERE tenant_id = \(tenantId) ORDER BY created_at, id LIMIT \(limit)"
        ) { row in try JSONColumn.decode(BountyRecord.self, text: try row.get("record"), what: "a bounty") }
    }

    public func createSubmission(_ submission: SubmissionRecord) async throws -> SubmissionRecord {
        let json = try JSONColumn.encode(submission)
        let s = submission
        let inserted = try await rows(
            "storing submission \(s.id)",
            """
            INSERT INTO submissions (id, tenant_id, bounty_id, state, created_at, updated_at, record)
            VALUES (\(s.id), \(s.tenantId), \(s.bountyId), \(s.state.rawValue), \(s.createdAt.column), \(s.updatedAt.column), \(json))
            ON CONFLICT (id) DO NOTHING RETURNING id
            """)
        if inserted.isEmpty { throw SandboxError(.invalidState, "submission \(s.id) is already stored; pick a new id") }
        return submission
    }

    public func submission(tenantId: String, id: String) async throws -> SubmissionRecord? {
        try await fetch("reading submission \(id)", "SELECT record FROM submissions WHERE id = \(id) AND tenant_id = \(tenantId)") { row in
            try JSONColumn.decode(SubmissionRecord.self, text: try row.get("record"), what: "submission \(id)")
        }.first
    }

    public func updateSubmission(_ submission: SubmissionRecord, expected: Date) async throws -> Bool {
        let json = try JSONColumn.encode(submission)
        let s = submission
        let changed = try await rows(
            "updating submission \(s.id)",
            """
            UPDATE submissions SET state = \(s.state.rawValue), updated_at = \(s.updatedAt.column), record = \(json)
            WHERE id = \(s.id) AND tenant_id = \(s.tenantId) AND updated_at = \(expected.column) RETURNING id
            """)
        return !changed.isEmpty
    }

    public func submissions(tenantId: String, bountyId: String) async throws -> [SubmissionRecord] {
        try await fetch(
            "listing submissions of bounty \(bountyId)",
            "SELECT record FROM submissions WHERE tenant_id = \(tenantId) AND bounty_id = \(bountyId) ORDER BY created_at, id"
        ) { row in try JSONColumn.decode(SubmissionRecord.self, text: try row.get("record"), what: "a submission") }
    }

    public func unfinishedSubmissions(limit: Int) async throws -> [SubmissionRecord] {
        let limit = min(max(limit, 1), 10_000)
        return try await fetch(
            "listing unfinished submissions",
            "SELECT record FROM submissions WHERE state IN ('queued', 'running') ORDER BY updated_at, id LIMIT \(limit)"
        ) { row in try JSONColumn.decode(SubmissionRecord.self, text: try row.get("record"), what: "a submission") }
    }
}
