import Foundation
import Logging
import RunStoreContract
import SandboxCore
import SandboxStore
import SandboxTestSupport
import Synchronization
import Testing
@testable import SandboxStorePostgres

/// Store faults on a real PostgreSQL of the test's own, crashed (`pg_ctl stop -m immediate`) and
/// started again: calls are refused with `store_unavailable` (never the password) instead of
/// waiting, keys checked before the outage still authenticate, and once the server is back the
/// store answers, the LISTEN connection listens again and nothing committed is lost.
@Suite("Store outages on PostgreSQL", .postgres, .serialized)
struct StoreOutagePostgresTests {
    @Test("a crashed server: every call is refused with store_unavailable; back: calls, LISTEN and committed runs are all there")
    func crashAndReturn() async throws {
        let pg = try await PrivatePostgres.start()
        let store: PostgresStore, other: PostgresStore
        do {
            store = try await PostgresStore.open(url: pg.url)
            other = try await PostgresStore.open(url: pg.url)
        } catch {
            await pg.stop()
            throw error
        }
        do { try await crashAndReturn(pg, store, other) } catch {
            await store.close(); await other.close(); await pg.stop()
            throw error
        }
        await store.close(); await other.close(); await pg.stop()
    }

    @Test("durability: the suite's fast server (fsync and synchronous_commit off) is reported as losing commits on a crash")
    func durabilityReported() async throws {
        try await withPostgres { store, _ in
            let d = try await store.durability()
            #expect(!d.durable)
            #expect(d.detail.contains("synchronous_commit=off"))
            #expect(d.detail.contains("PostgreSQL's contract"))
        }
    }

    func crashAndReturn(_ pg: PrivatePostgres, _ store: PostgresStore, _ other: PostgresStore) async throws {
        // fsync and synchronous_commit on: a 201/202 survives the crash below.
        #expect(try await store.durability().durable)
        let (key, record) = try await store.createAPIKey(tenantName: "acme")
        #expect(try await store.authenticate(key: key) == record)
        let accepted = RunStoreContract.newRun(record.tenantId)
        _ = try await store.submitRun(accepted, maxQueued: 10)
        // What this node hears, on one subscription from before the outage (as a worker keeps it).
        let heard = Heard(store.runChanges())
        defer { heard.stop() }
        let before = RunStoreContract.newRun(record.tenantId)
        _ = try await other.submitRun(before, maxQueued: 10)
        #expect(await heard.waitFor(before.id, within: .seconds(30)))

        try await pg.down()
        // The first call finds the outage; it names the engine and never the password.
        let first = await #expect(throws: SandboxError.self) { try await store.tenant(id: record.tenantId) }
        #expect(first?.code == .storeUnavailable)
        #expect(first?.message.contains("PostgreSQL") == true)
        #expect(first?.message.contains(PrivatePostgres.password) == false)
        #expect(store.health.outage != nil)
        // From then on every call is refused without trying, writes included: nothing is half done.
        let run = RunStoreContract.newRun(record.tenantId)
        let refused = await #expect(throws: SandboxError.self) { _ = try await store.submitRun(run, maxQueued: 10) }
        #expect(refused?.code == .storeUnavailable)
        #expect(refused?.retryAfterSeconds == 2)
        #expect(refused?.message.contains(PrivatePostgres.password) == false)
        // A key that authenticated before the outage still does; an unknown one is not let in.
        #expect(try await store.authenticate(key: key) == record)
        let stranger = APIKeyText.generate().key
        await #expect(throws: SandboxError.self) { _ = try await store.authenticate(key: stranger) }
        // The readiness question says down.
        #expect(await store.health.check() != nil)

        try await pg.up()
        #expect(await store.health.waitUntilUp(atMost: .seconds(60)))
        #expect(await other.health.check() == nil)
        // Committed before the crash (durable settings): still there.
        #expect(try await store.run(id: accepted.id)?.id == accepted.id)
        _ = try await other.submitRun(run, maxQueued: 10)
        // The LISTEN connection reconnects (within about a second): a run queued by the other node
        // after that wakes this one. (A NOTIFY sent before it listens again is lost; the workers
        // claim as soon as the store answers, so they do not depend on it.)
        var reached = false
        for _ in 0..<30 where !reached {
            let probe = RunStoreContract.newRun(record.tenantId)
            _ = try await other.submitRun(probe, maxQueued: 100)
            reached = await heard.waitFor(probe.id, within: .seconds(1))
        }
        #expect(reached, "no NOTIFY reached the reconnected listener")
    }
}

/// The run ids a ``RunStore/runChanges()`` stream delivered, collected by one task.
final class Heard: Sendable {
    private final class Ids: Sendable {
        let set = Mutex(Set<String>())
    }
    private let ids = Ids()
    private let task: Mutex<Task<Void, Never>?> = Mutex(nil)

    init(_ changes: AsyncStream<RunChange>) {
        let ids = self.ids
        let t = Task {
            for await change in changes { ids.set.withLock { _ = $0.insert(change.runId) } }
        }
        task.withLock { $0 = t }
    }

    func stop() { task.withLock { $0 }?.cancel() }

    /// Whether `runId` was heard within `limit` (asked every 50 ms).
    func waitFor(_ runId: String, within limit: Duration) async -> Bool {
        let end = ContinuousClock.now + limit
        while ContinuousClock.now < end {
            if ids.set.withLock({ $0.contains(runId) }) { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return false
    }
}
