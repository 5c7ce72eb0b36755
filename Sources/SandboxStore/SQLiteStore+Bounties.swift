import Foundation
import GRDB
import SandboxCore

/// Bounties and submissions on SQLite: each record is its JSON document beside the columns
/// queries select and order by; a submission is replaced only while its `updated_at` is the one
/// its writer read (compare-and-set).
extension SQLiteStore: BountyStore {
    public func createBounty(_ bounty: BountyRecord) async throws -> BountyRecord {
        let json = try JSONColumn.encode(bounty)
        try await write("storing bounty \(bounty.id)") { db in
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM bounties WHERE id = ?", arguments: [bounty.id]) == true {
                throw SandboxError(.invalidState, "bounty \(bounty.id) is already stored; pick a new id")
            }
            try db.execute(sql: "INSERT INTO bounties (id, tenant_id, created_at, record) VALUES (?, ?, ?, ?)",
                           arguments: [bounty.id, bounty.tenantId, bounty.createdAt.column, json])
        }
        return bounty
    }

    public func bounty(tenantId: String, id: String) async throws -> BountyRecord? {
        let text = try await read("reading bounty \(id)") { db in
            try String.fetchOne(db, sql: "SELECT record FROM bounties WHERE id = ? AND tenant_id = ?", arguments: [id, tenantId])
        }
        return try text.map { (t) throws(SandboxError) in try JSONColumn.decode(BountyRecord.self, text: t, what: "bounty \(id)") }
    }

    public func bounties(tenantId: String, limit: Int) async throws -> [BountyRecord] {
        let limit = min(max(limit, 1), 10_000)
        let texts = try await read("listing bounties") { db in
            try String.fetchAll(db, sql: "SELECT record FROM bounties WHERE tenant_id = ? ORDER BY created_at, id LIMIT ?",
                                arguments: [tenantId, limit])
        }
        return try texts.map { (t) throws(SandboxError) in try JSONColumn.decode(BountyRecord.self, text: t, what: "a bounty") }
    }

    public func createSubmission(_ submission: SubmissionRecord) async throws -> SubmissionRecord {
        let json = try JSONColumn.encode(submission)
        let s = submission
        try await write("storing submission \(s.id)") { db in
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM submissions WHERE id = ?", arguments: [s.id]) == true {
                throw SandboxError(.invalidState, "submission \(s.id) is already stored; pick a new id")
            }
            try db.execute(
                sql: """
                    INSERT INTO submissions (id, tenant_id, bounty_id, state, created_at, updated_at, record)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [s.id, s.tenantId, s.bountyId, s.state.rawValue, s.createdAt.column, s.updatedAt.column, json])
        }
        return submission
    }

    public func submission(tenantId: String, id: String) async throws -> SubmissionRecord? {
        let text = try await read("reading submission \(id)") { db in
            try String.fetchOne(db, sql: "SELECT record FROM submissions WHERE id = ? AND tenant_id = ?", arguments: [id, tenantId])
        }
        return try text.map { (t) throws(SandboxError) in try JSONColumn.decode(SubmissionRecord.self, text: t, what: "submission \(id)") }
    }

    public func updateSubmission(_ submission: SubmissionRecord, expected: Date) async throws -> Bool {
        let json = try JSONColumn.encode(submission)
        let s = submission
        return try await write("updating submission \(s.id)") { db in
            try db.execute(
                sql: "UPDATE submissions SET state = ?, updated_at = ?, record = ? WHERE id = ? AND tenant_id = ? AND updated_at = ?",
                arguments: [s.state.rawValue, s.updatedAt.column, json, s.id, s.tenantId, expected.column])
            return db.changesCount > 0
        }
    }

    public func submissions(tenantId: String, bountyId: String) async throws -> [SubmissionRecord] {
        let texts = try await read("listing submissions of bounty \(bountyId)") { db in
            try String.fetchAll(db, sql: "SELECT record FROM submissions WHERE tenant_id = ? AND bounty_id = ? ORDER BY created_at, id",
                                arguments: [tenantId, bountyId])
        }
        return try texts.map { (t) throws(SandboxError) in try JSONColumn.decode(SubmissionRecord.self, text: t, what: "a submission") }
    }

    public func unfinishedSubmissions(limit: Int) async throws -> [SubmissionRecord] {
        let limit = min(max(limit, 1), 10_000)
        let texts = try await read("listing unfinished submissions") { db in
            try String.fetchAll(db, sql: "SELECT record FROM submissions WHERE state IN ('queued', 'running') ORDER BY updated_at, id LIMIT ?",
                                arguments: [limit])
        }
        return try texts.map { (t) throws(SandboxError) in try JSONColumn.decode(SubmissionRecord.self, text: t, what: "a submission") }
    }
}
