import Foundation
import SandboxCore
import SandboxStore
import Testing

/// The audit trail contract's fixture (``StoreFixture``).
public typealias EventStoreFixture = StoreFixture<any SandboxStore>

/// The audit trail contract (``SandboxStore/appendEvents(_:)``, ``SandboxStore/events(sandboxId:after:limit:)``)
/// every engine must pass; each engine's suite runs every case on a fresh store.
public enum EventTrailContract {
    public typealias Case = @Sendable (EventStoreFixture) async throws -> Void

    public static let cases: [String: Case] = [
        "entries come back in append order, numbered 1, 2, … per sandbox": numbering,
        "after and limit page through a trail": paging,
        "every kind of detail value and an absent correlation survive the store": values,
        "concurrent appenders on two instances get one gapless order that keeps each appender's order": concurrent,
        "the trail is append-only: stored entries never change as more are appended": appendOnly,
    ]

    public static var names: [String] { cases.keys.sorted() }

    static func event(_ sandbox: String, _ kind: AuditKind, _ n: Int64 = 0, actor: String = "key_test") -> AuditEvent {
        AuditEvent(sandboxId: sandbox, kind: kind, actor: actor, correlation: "c-\(n)", detail: ["n": .int(n)])
    }

    static func numbering(_ f: EventStoreFixture) async throws {
        let a = "sbx-" + UUID().uuidString.prefix(8), b = "sbx-" + UUID().uuidString.prefix(8)
        try await f.store.appendEvents([event(a, .sandboxCreate), event(b, .sandboxCreate), event(a, .execStart, 1)])
        try await f.store.appendEvents([event(a, .execEnd, 1), event(b, .fileWrite)])
        var stale = event(a, .sandboxDelete)
        stale.seq = 99  // a seq the caller sets is ignored: the store numbers
        try await f.store.appendEvents([stale])
        try await f.store.appendEvents([])

        let trailA = try await f.store.events(sandboxId: a, after: 0, limit: 100)
        #expect(trailA.map(\.seq) == [1, 2, 3, 4])
        #expect(trailA.map(\.kind) == [.sandboxCreate, .execStart, .execEnd, .sandboxDelete])
        let trailB = try await f.store.events(sandboxId: b, after: 0, limit: 100)
        #expect(trailB.map(\.seq) == [1, 2])
        #expect(trailB.map(\.kind) == [.sandboxCreate, .fileWrite])
        #expect(try await f.store.events(sandboxId: "sbx-none", after: 0, limit: 100).isEmpty)
    }

    static func paging(_ f: EventStoreFixture) async throws {
        let id = "sbx-" + UUID().uuidString.prefix(8)
        try await f.store.appendEvents((1...25).map { event(id, .execStart, $0) })
        let first = try await f.store.events(sandboxId: id, after: 0, limit: 10)
        #expect(first.map(\.seq) == Array(1...10))
        let next = try await f.store.events(sandboxId: id, after: 10, limit: 10)
        #expect(next.map(\.seq) == Array(11...20))
        let rest = try await f.store.events(sandboxId: id, after: 20, limit: 10)
        #expect(rest.map(\.seq) == Array(21...25))
        #expect(try await f.store.events(sandboxId: id, after: 25, limit: 10).isEmpty)
        #expect(rest.map { $0.detail["n"] } == (21...25).map { EventValue.int($0) })
    }

    static func values(_ f: EventStoreFixture) async throws {
        let id = "sbx-" + UUID().uuidString.prefix(8)
        let at = Date(timeIntervalSinceReferenceDate: 760_000_000.125)
        let full = AuditEvent(
            at: at, sandboxId: id, kind: .egressDeny, actor: "sandbox", correlation: "conn-7",
            detail: ["host": "evil.example", "port": 443, "tls": true, "note": "ünïcode \"quoted\"\n", "big": .int(Int64.max)])
        let bare = AuditEvent(at: at, sandboxId: id, kind: .phaseChange, actor: "server")
        try await f.store.appendEvents([full, bare])
        let got = try await f.store.events(sandboxId: id, after: 0, limit: 10)
        var want = [full, bare]
        want[0].seq = 1
        want[1].seq = 2
        #expect(got == want)
    }

    static func concurrent(_ f: EventStoreFixture) async throws {
        let id = "sbx-" + UUID().uuidString.prefix(8)
        let other = try await f.second()
        let appenders = 6, batches = 10, perBatch = 3
        try await withThrowingTaskGroup(of: Void.self) { group in
            for w in 0..<appenders {
                let store = w % 2 == 0 ? f.store : other
                group.addTask {
                    for b in 0..<batches {
                        let events = (0..<perBatch).map { i in event(id, .execStart, Int64(b * perBatch + i), actor: "w\(w)") }
                        try await store.appendEvents(events)
                    }
                }
            }
            try await group.waitForAll()
        }
        let total = appenders * batches * perBatch
        let trail = try await f.store.events(sandboxId: id, after: 0, limit: 10_000)
        #expect(trail.map(\.seq) == (1...Int64(total)).map { $0 })
        for w in 0..<appenders {
            let mine = trail.filter { $0.actor == "w\(w)" }.compactMap { $0.detail["n"] }
            #expect(mine == (0..<Int64(batches * perBatch)).map { EventValue.int($0) }, "appender w\(w) kept its order")
        }
        // A batch is stored in one piece: its entries are adjacent.
        for w in 0..<appenders {
            let seqs = trail.filter { $0.actor == "w\(w)" }.compactMap(\.seq)
            for b in 0..<batches {
                let batch = seqs[(b * perBatch)..<((b + 1) * perBatch)]
                #expect(batch.last! - batch.first! == Int64(perBatch - 1))
            }
        }
    }

    static func appendOnly(_ f: EventStoreFixture) async throws {
        let id = "sbx-" + UUID().uuidString.prefix(8)
        try await f.store.appendEvents([event(id, .sandboxCreate), event(id, .execStart, 1)])
        let before = try await f.store.events(sandboxId: id, after: 0, limit: 10)
        // The same entries appended again are new entries, not replacements.
        try await f.store.appendEvents(before)
        let other = try await f.second()
        try await other.appendEvents([event(id, .sandboxDelete)])
        let after = try await f.store.events(sandboxId: id, after: 0, limit: 10)
        #expect(Array(after.prefix(2)) == before)
        #expect(after.map(\.seq) == [1, 2, 3, 4, 5])
        #expect(after.map(\.kind) == [.sandboxCreate, .execStart, .sandboxCreate, .execStart, .sandboxDelete])
    }
}
