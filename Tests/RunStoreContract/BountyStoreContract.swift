import Foundation
import SandboxCore
import SandboxStore
import Testing

/// The bounty contract's fixture: `second` is another node on the same database.
public typealias BountyStoreFixture = StoreFixture<any BountyStore>

/// The bounty store contract (``BountyStore``) every engine must pass; each engine's suite runs
/// every case on a fresh store.
public enum BountyStoreContract {
    public typealias Case = @Sendable (BountyStoreFixture) async throws -> Void

    public static let cases: [String: Case] = [
        "a bounty reads back whole, only for its tenant, and lists oldest first": bounties,
        "a submission reads back whole, only for its tenant, listed per bounty oldest first": submissions,
        "an update applies only while updated_at is the one read (two nodes advancing one submission)": compareAndSet,
        "unfinished submissions are the queued and running ones of every tenant": unfinished,
        "an id stored twice is refused": duplicates,
    ]

    public static var names: [String] { cases.keys.sorted() }

    static func tenant() -> String { "tnt_" + UUID().uuidString.prefix(8).lowercased() }

    static func bounty(_ tenant: String, at: Date = Date()) -> BountyRecord {
        BountyRecord(tenantId: tenant, title: "sort these numbers", profile: .bounty,
                     cases: [BountyCase(input: "3 1 2", hidden: "1 2 3"), BountyCase(input: "b a", hidden: "a b")],
                     verifier: VerifierSpec(lang: "python", code: "print('{\"score\": 1}')"), createdAt: at)
    }

    static func submission(_ tenant: String, bounty: String, at: Date = Date()) -> SubmissionRecord {
        SubmissionRecord(tenantId: tenant, bountyId: bounty, agentId: "agt-000000000001", agentDigest: "sha256:" + String(repeating: "a", count: 64),
                         cases: [SubmissionCase(index: 0), SubmissionCase(index: 1)], createdAt: at)
    }

    static func bounties(_ f: BountyStoreFixture) async throws {
        let (a, b) = (tenant(), tenant())
        let t0 = Date(timeIntervalSinceReferenceDate: 800_000_000.25)
        let first = try await f.store.createBounty(bounty(a, at: t0))
        let second = try await f.store.createBounty(bounty(a, at: t0 + 1))
        _ = try await f.store.createBounty(bounty(b, at: t0))
        #expect(try await f.store.bounty(tenantId: a, id: first.id) == first)
        #expect(try await f.store.bounty(tenantId: b, id: first.id) == nil)
        #expect(try await f.store.bounty(tenantId: a, id: "bnt-000000000000") == nil)
        #expect(try await f.store.bounties(tenantId: a, limit: 100).map(\.id) == [first.id, second.id])
        #expect(try await f.store.bounties(tenantId: a, limit: 1).map(\.id) == [first.id])
        let other = try await f.second()
        #expect(try await other.bounty(tenantId: a, id: second.id)?.cases.map(\.hidden) == ["1 2 3", "a b"])
    }

    static func submissions(_ f: BountyStoreFixture) async throws {
        let (a, b) = (tenant(), tenant())
        let t0 = Date(timeIntervalSinceReferenceDate: 800_000_000.5)
        let later = try await f.store.createSubmission(submission(a, bounty: "bnt-1", at: t0 + 5))
        let earlier = try await f.store.createSubmission(submission(a, bounty: "bnt-1", at: t0))
        _ = try await f.store.createSubmission(submission(a, bounty: "bnt-2", at: t0))
        _ = try await f.store.createSubmission(submission(b, bounty: "bnt-1", at: t0))
        #expect(try await f.store.submission(tenantId: a, id: later.id) == later)
        #expect(try await f.store.submission(tenantId: b, id: later.id) == nil)
        #expect(try await f.store.submissions(tenantId: a, bountyId: "bnt-1").map(\.id) == [earlier.id, later.id])
    }

    static func compareAndSet(_ f: BountyStoreFixture) async throws {
        let t = tenant()
        let read = try await f.store.createSubmission(submission(t, bounty: "bnt-1"))
        let other = try await f.second()
        // Both nodes read the same version; the first write wins, the second changes nothing.
        var mine = read
        mine.state = .running
        mine.cases[0].runId = "run-mine"
        mine.updatedAt = read.updatedAt + 0.5
        var theirs = read
        theirs.cases[0].runId = "run-theirs"
        theirs.updatedAt = read.updatedAt + 0.25
        #expect(try await f.store.updateSubmission(mine, expected: read.updatedAt))
        #expect(try await !other.updateSubmission(theirs, expected: read.updatedAt))
        let stored = try #require(try await other.submission(tenantId: t, id: read.id))
        #expect(stored == mine)
        // The loser reads again and advances from what is stored.
        var next = stored
        next.state = .scored
        next.score = 0.5
        next.updatedAt = stored.updatedAt + 1
        #expect(try await other.updateSubmission(next, expected: stored.updatedAt))
        #expect(try await f.store.submission(tenantId: t, id: read.id)?.score == 0.5)
        // Another tenant cannot update it, even knowing its updated_at.
        var foreign = next
        foreign.tenantId = tenant()
        foreign.updatedAt = next.updatedAt + 1
        #expect(try await !f.store.updateSubmission(foreign, expected: next.updatedAt))
    }

    static func unfinished(_ f: BountyStoreFixture) async throws {
        let (a, b) = (tenant(), tenant())
        let queued = try await f.store.createSubmission(submission(a, bounty: "bnt-1"))
        var running = try await f.store.createSubmission(submission(b, bounty: "bnt-1"))
        var scored = try await f.store.createSubmission(submission(a, bounty: "bnt-1"))
        let expected = (running.updatedAt, scored.updatedAt)
        running.state = .running
        running.updatedAt += 1
        scored.state = .scored
        scored.updatedAt += 1
        #expect(try await f.store.updateSubmission(running, expected: expected.0))
        #expect(try await f.store.updateSubmission(scored, expected: expected.1))
        let ids = Set(try await f.store.unfinishedSubmissions(limit: 10_000).map(\.id))
        #expect(ids.contains(queued.id) && ids.contains(running.id) && !ids.contains(scored.id))
    }

    static func duplicates(_ f: BountyStoreFixture) async throws {
        let t = tenant()
        let b = try await f.store.createBounty(bounty(t))
        await #expect(throws: SandboxError.self) { _ = try await f.store.createBounty(b) }
        let s = try await f.store.createSubmission(submission(t, bounty: b.id))
        await #expect(throws: SandboxError.self) { _ = try await f.store.createSubmission(s) }
    }
}
