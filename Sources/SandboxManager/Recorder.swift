import Foundation
import Logging
import SandboxCore
import SandboxStore

/// Writes what does not have to be durable before a reply (exec records, logs, activity, audit of
/// the server's own actions, audit trail entries) in the background, in order, so an exec's round trip never waits
/// for the disk. ``flush()`` waits for everything queued so far.
final class Recorder: Sendable {
    enum Item: Sendable {
        case exec(ExecRecord, insert: Bool)
        case log(execId: String, stream: StdStream, data: [UInt8], cap: Int)
        case sandbox(SandboxRecord)
        case audit(AuditEntry)
        /// The trail's queued entries, appended as one batch.
        case events(AuditTrail)
        case flush(CheckedContinuation<Void, Never>)
    }

    private let continuation: AsyncStream<Item>.Continuation
    private let stream: AsyncStream<Item>
    let store: any SandboxStore
    let logger: Logger

    init(store: any SandboxStore, logger: Logger) {
        self.store = store
        self.logger = logger
        (stream, continuation) = AsyncStream<Item>.makeStream()
    }

    /// Queues a write. After ``finish()`` (server stopping) writes are dropped with a warning:
    /// use ``persist(_:)`` for what must not be lost.
    func enqueue(_ item: Item) {
        if case .terminated = continuation.yield(item) {
            logger.warning("store write after shutdown dropped", metadata: ["item": "\(item)"])
        }
    }

    /// Queues a write and waits until it (and everything before it) is on disk; after
    /// ``finish()`` it writes directly.
    func persist(_ item: Item) async {
        if case .terminated = continuation.yield(item) {
            await write(item)
            return
        }
        await flush()
    }

    /// Waits until every item queued before this call is written.
    func flush() async {
        await withCheckedContinuation { c in
            if case .terminated = continuation.yield(.flush(c)) { c.resume() }
        }
    }

    /// Drains the queue until ``finish()``; the owner (the manager) runs it in its own task.
    func drain() async {
        for await item in stream { await write(item) }
    }

    private func write(_ item: Item) async {
        do {
            switch item {
            case .exec(let r, let insert): if insert { try await store.insertExec(r) } else { try await store.updateExec(r) }
            case .log(let id, let s, let d, let cap): try await store.appendLog(execId: id, stream: s, data: d, cap: cap)
            case .sandbox(let r): try await store.updateSandbox(r)
            case .audit(let a): try await store.appendAudit(a)
            case .events(let trail):
                let events = trail.take()
                try await store.appendEvents(events)
                trail.stored(events)
            case .flush(let c): c.resume()
            }
        } catch {
            logger.error("store write failed", metadata: ["error": "\(error)"])
        }
    }

    func finish() { continuation.finish() }
}
