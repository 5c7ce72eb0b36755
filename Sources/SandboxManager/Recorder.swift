import Foundation
import Logging
import Metrics
import SandboxCore
import SandboxStore
import Synchronization

/// Writes what does not have to be durable before a reply (exec records, logs, activity, audit of
/// the server's own actions and of API routes, audit trail entries) in the background, in order,
/// so an exec's round trip never waits for the disk. ``flush()`` waits for everything queued so far.
///
/// Store outages: while the store is down (``StoreHealth``), or once a write fails because it is,
/// that item and every later one go to the ``RecorderSpool`` on local disk, in order; the drain's
/// replayer writes them once the store answers again, each exactly once (the writes are made
/// idempotent: a batch key, a log offset, an exec insert that finds itself stored), then writing
/// is direct again. A full spool counts what it could not hold per sandbox and, after the spool
/// is written, appends one `audit.gap` trail entry per sandbox (and one in the trail of each tenant that lost entries).
final class Recorder: Sendable {
    enum Item: Sendable {
        case exec(ExecRecord, insert: Bool)
        case log(execId: String, sandboxId: String, stream: StdStream, data: [UInt8], cap: Int)
        case sandbox(SandboxRecord)
        /// An entry of its tenant's trail.
        case tenant(TenantEvent)
        /// The meter's usage samples.
        case usage([UsageSample])
        /// The trail's queued entries, appended as one batch.
        case events(AuditTrail)
        case flush(CheckedContinuation<Void, Never>)
    }

    private let continuation: AsyncStream<Item>.Continuation
    private let stream: AsyncStream<Item>
    /// Wakes the replayer when the spool gets an entry.
    private let wakes: (stream: AsyncStream<Void>, continuation: AsyncStream<Void>.Continuation)
    let store: any SandboxStore
    let logger: Logger
    let spool: RecorderSpool

    /// What the spool could not hold, since when (the next `audit.gap`).
    private struct Drops {
        var bySandbox: [String: Int] = [:]
        var byTenant: [String: Int] = [:]
        var from: Date?
        var to: Date?
    }
    private struct State {
        /// Bytes handed over per exec and stream so far (a log chunk's offset); an exec's entry
        /// goes when its record gets its end, so the map holds the execs in flight.
        var logOffsets: [String: [StdStream: Int]] = [:]
        var drops = Drops()
        /// Woken when entries are stored (set by the first batch).
        weak var trail: AuditTrail?
    }
    private let state = Mutex(State())

    /// A recorder over `store`, spooling to `spoolDirectory` during outages (what is left there
    /// from a previous process is replayed once ``drain()`` runs).
    init(store: any SandboxStore, logger: Logger, spoolDirectory: String, spoolLimits: RecorderSpool.Limits = .init()) {
        self.store = store
        self.logger = logger
        spool = RecorderSpool(directory: spoolDirectory, limits: spoolLimits, logger: logger)
        (stream, continuation) = AsyncStream<Item>.makeStream()
        wakes = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// Queues a write; never blocks. After ``finish()`` (server stopping) writes are dropped with a
    /// warning: use ``persist(_:)`` for what must not be lost.
    func enqueue(_ item: Item) {
        if case .terminated = continuation.yield(item) {
            logger.warning("store write after shutdown dropped", metadata: ["item": "\(item)"])
        }
    }

    /// Queues a write and waits until it (and everything before it) is on disk (in the store or
    /// the spool); after ``finish()`` it writes directly.
    func persist(_ item: Item) async {
        if case .terminated = continuation.yield(item) {
            if let entry = prepare(item), await write(entry) == .outage { hold(entry) }
            return
        }
        await flush()
    }

    /// Waits until every item queued before this call is handed to the store or the spool (so it
    /// returns during an outage too).
    func flush() async {
        await withCheckedContinuation { c in
            if case .terminated = continuation.yield(.flush(c)) { c.resume() }
        }
    }

    /// Items waiting in the spool for the store.
    var spooled: Int { spool.count }

    /// Drains the queue until ``finish()``, and the spool whenever the store answers; the owner
    /// (the manager) runs it in its own task. Spooled items left at the end stay on disk for the
    /// next process.
    func drain() async {
        await withDiscardingTaskGroup { group in
            group.addTask { [self] in
                for await _ in wakes.stream { await replay(stopOnOutage: false) }
            }
            if !spool.isEmpty { wakes.continuation.yield() }  // left by the previous process
            for await item in stream { await handle(item) }
            group.cancelAll()
        }
        // The replayer was cancelled: one last pass while the store answers.
        if store.health.isUp, !spool.isEmpty { await replay(stopOnOutage: true) }
    }

    func finish() {
        continuation.finish()
        wakes.continuation.finish()
    }

    private func handle(_ item: Item) async {
        if case .flush(let c) = item {
            c.resume()
            return
        }
        guard let entry = prepare(item) else { return }
        if !spool.isEmpty || !store.health.isUp {
            hold(entry)
            return
        }
        if await write(entry) == .outage { hold(entry) }
    }

    /// The item as it is written: a batch's entries taken with a fresh key, a log chunk with its offset.
    private func prepare(_ item: Item) -> SpoolEntry? {
        switch item {
        case .exec(let r, let insert):
            if r.endedAt != nil { state.withLock { _ = $0.logOffsets.removeValue(forKey: r.id) } }
            return .exec(r, insert: insert)
        case .log(let execId, let sandboxId, let s, let data, let cap):
            let offset = state.withLock { st -> Int in
                let offset = st.logOffsets[execId]?[s] ?? 0
                st.logOffsets[execId, default: [:]][s] = offset + data.count
                return offset
            }
            return .log(execId: execId, sandboxId: sandboxId, stream: s, data: Data(data), cap: cap, offset: offset)
        case .sandbox(let r): return .sandbox(r)
        case .tenant(let e): return .tenant([e], batch: UUID().uuidString)
        case .usage(let samples): return samples.isEmpty ? nil : .usage(samples)
        case .events(let trail):
            let events = trail.take()
            state.withLock { $0.trail = trail }
            return events.isEmpty ? nil : .events(events, batch: UUID().uuidString)
        case .flush(let c):
            c.resume()
            return nil
        }
    }

    /// Puts `entry` behind the spool, or counts it as dropped when the spool is full.
    private func hold(_ entry: SpoolEntry) {
        if spool.append(entry) == .spooled {
            wakes.continuation.yield()
            return
        }
        let first = state.withLock { s -> Bool in
            let now = Date()
            let first = s.drops.from == nil
            if first { s.drops.from = now }
            s.drops.to = now
            for (id, n) in entry.sandboxCounts { s.drops.bySandbox[id, default: 0] += n }
            if case .tenant(let events, _) = entry { for e in events { s.drops.byTenant[e.tenantId, default: 0] += 1 } }
            return first
        }
        if first {
            logger.warning("the store does not answer and the recorder's spool is full; further records are counted and reported as audit.gap once the store is back", metadata: [
                "spool": "\(spool.dataPath)", "max_bytes": "\(spool.limits.maxBytes)", "max_items": "\(spool.limits.maxItems)"])
        }
        wakes.continuation.yield()
    }

    /// Writes the spool in order while the store answers (waiting for it, unless `stopOnOutage`),
    /// then the `audit.gap` entries of what a full spool dropped.
    private func replay(stopOnOutage: Bool) async {
        while !Task.isCancelled || stopOnOutage {
            guard let entry = spool.first else {
                let gap = takeGap()
                if gap.isEmpty { return }
                for e in gap where spool.append(e, force: true) != .spooled {
                    logger.error("an audit.gap entry could not be spooled", metadata: ["entry": "\(e)"])
                }
                continue
            }
            if stopOnOutage {
                guard store.health.isUp else { return }
            } else {
                await store.health.waitUntilUp()
                if Task.isCancelled { return }
            }
            switch await write(entry) {
            case .done, .failed:
                spool.removeFirst()
            case .outage:
                if stopOnOutage { return }
                // The health guard marked the store down: the next wait lasts until it answers.
                try? await Task.sleep(for: .milliseconds(50))
            case .cancelled:
                return
            }
        }
    }

    /// The entries reporting what a full spool dropped (and forgets it): one `audit.gap` per
    /// sandbox (one trail batch) and one per tenant that lost entries of its trail (another batch).
    private func takeGap() -> [SpoolEntry] {
        let drops = state.withLock { s -> Drops in
            defer { s.drops = Drops() }
            return s.drops
        }
        guard let from = drops.from, let to = drops.to else { return [] }
        let reason = "the store was unreachable and the local spool (\(spool.limits.maxBytes >> 20) MiB, \(spool.limits.maxItems) items) was full"
        let (fromText, toText) = (from.formatted(.iso8601), to.formatted(.iso8601))
        var out: [SpoolEntry] = []
        let events = drops.bySandbox.sorted { $0.key < $1.key }.map { id, n in
            AuditEvent(sandboxId: id, kind: .auditGap, actor: "server", detail: [
                "dropped": .int(Int64(n)), "reason": .string(reason), "from": .string(fromText), "to": .string(toText)])
        }
        if !events.isEmpty { out.append(.events(events, batch: UUID().uuidString)) }
        let tenantGaps = drops.byTenant.sorted { $0.key < $1.key }.map { tenant, n in
            TenantEvent(tenantId: tenant, kind: .auditGap, actor: "server", detail: [
                "dropped": .int(Int64(n)), "reason": .string(reason), "from": .string(fromText), "to": .string(toText)])
        }
        if !tenantGaps.isEmpty { out.append(.tenant(tenantGaps, batch: UUID().uuidString)) }
        logger.warning("records were dropped while the store was unreachable; audit.gap entries appended",
                       metadata: ["sandboxes": "\(drops.bySandbox)", "tenants": "\(drops.byTenant)"])
        return out
    }

    /// `sandboxer_store_write_seconds`: how long the store takes for the recorder's writes (exec
    /// records, logs, sandbox records, trail batches, usage samples), outages included.
    static var storeLatency: Metrics.Timer { Metrics.Timer(label: "sandboxer_store_write_seconds") }

    static func nanoseconds(_ d: Duration) -> Int64 {
        d.components.seconds * 1_000_000_000 + d.components.attoseconds / 1_000_000_000
    }

    /// How one write went.
    enum Written: Equatable {
        case done
        /// The store could not be reached (the write may or may not have happened).
        case outage
        /// The store refused it (logged; not retried).
        case failed
        /// The writer was cancelled mid-write (it may or may not have happened).
        case cancelled
    }

    /// Writes one entry, idempotently, so a replay of a write that failed ambiguously (no answer in time, connection lost) stores it once.
    func write(_ entry: SpoolEntry) async -> Written {
        let started = ContinuousClock.now
        defer { Self.storeLatency.recordNanoseconds(Self.nanoseconds(ContinuousClock.now - started)) }
        do {
            switch entry {
            case .exec(let r, let insert):
                if insert {
                    do { try await store.insertExec(r) } catch let e as SandboxError where e.code == .invalidState {
                        // Stored already: an earlier try that got no answer had committed.
                    }
                } else {
                    try await store.updateExec(r)
                }
            case .log(let id, _, let s, let d, let cap, let offset):
                try await store.appendLog(execId: id, stream: s, data: [UInt8](d), cap: cap, at: offset)
            case .sandbox(let r):
                try await store.updateSandbox(r)
            case .tenant(let events, let batch):
                try await store.appendTenantEvents(events, batch: batch)
            case .usage(let samples):
                try await store.appendUsage(samples)
            case .audit(let legacy):
                // Keyed by its content: a replay of the same old entry is stored once.
                try await store.appendTenantEvents([legacy.event], batch: "legacy-\(legacy.tenantId)-\(legacy.at.timeIntervalSinceReferenceDate)-\(legacy.action)-\(legacy.target)")
            case .events(let events, let batch):
                try await store.appendEvents(events, batch: batch)
                state.withLock { $0.trail }?.stored(events)
            }
            return .done
        } catch {
            if StoreHealth.isOutage(error) { return .outage }
            if Task.isCancelled { return .cancelled }
            logger.error("store write failed", metadata: ["error": "\(error)"])
            return .failed
        }
    }
}
