import Foundation
import SandboxCore
import Synchronization

/// The manager's ``AuditSink``: entries go through the ordered background ``Recorder``
/// (consecutive entries become one store append), and whoever follows a sandbox's trail is woken
/// once its entries are stored. Get it as ``SandboxManager/eventSink``.
public final class AuditTrail: AuditSink {
    private let pending = Mutex<[AuditEvent]>([])
    /// Coalescing, rate and size limits per sandbox (``AuditLimiter``).
    private let limiter: Mutex<AuditLimiter>
    private let watchers = Mutex<(next: UInt64, bySandbox: [String: [UInt64: WakeSignal]])>((0, [:]))
    private let recorder: Recorder

    init(recorder: Recorder, limits: AuditLimiter.Settings = AuditLimiter.Settings()) {
        self.recorder = recorder
        limiter = Mutex(AuditLimiter(settings: limits))
    }

    /// Queues `event` behind everything queued so far, as the sandbox's limits allow (it may be
    /// coalesced, counted or cut, see ``AuditLimiter``); never blocks. Entries recorded while a
    /// batch waits for the recorder join that batch, in their order.
    public func record(_ event: AuditEvent) {
        let end = event.kind.endsTrail
        // Admitted and queued under the limiter's lock: the trail keeps the order of decisions.
        let first = limiter.withLock { l in append(end ? l.finish(event) : l.admit(event)) }
        if first { recorder.enqueue(.events(self)) }
    }

    /// Queues what came due for `sandboxId` (coalesced entries whose window ended, the count of
    /// rate-limited ones): called before its trail is read.
    func flushDue(_ sandboxId: String) {
        let first = limiter.withLock { l in append(l.due(sandboxId)) }
        if first { recorder.enqueue(.events(self)) }
    }

    /// Queues `events`; true when they start a new batch (the recorder must be told).
    private func append(_ events: [AuditEvent]) -> Bool {
        guard !events.isEmpty else { return false }
        return pending.withLock { p in
            p.append(contentsOf: events)
            return p.count == events.count
        }
    }

    /// The queued entries, taken by the recorder when their batch's turn comes.
    func take() -> [AuditEvent] {
        pending.withLock { p in
            defer { p.removeAll() }
            return p
        }
    }

    /// Wakes the followers of every sandbox among `events` (they were just stored).
    func stored(_ events: [AuditEvent]) {
        let ids = Set(events.map(\.sandboxId))
        let signals = watchers.withLock { w in ids.flatMap { w.bySandbox[$0]?.values.map { $0 } ?? [] } }
        for s in signals { s.signal() }
    }

    /// A signal raised whenever entries of `sandboxId` are stored by this process, until ``unwatch(_:_:)``.
    func watch(_ sandboxId: String) -> (WakeSignal, UInt64) {
        let signal = WakeSignal()
        let key = watchers.withLock { w -> UInt64 in
            w.next += 1
            w.bySandbox[sandboxId, default: [:]][w.next] = signal
            return w.next
        }
        return (signal, key)
    }

    func unwatch(_ sandboxId: String, _ key: UInt64) {
        watchers.withLock { w in
            w.bySandbox[sandboxId]?.removeValue(forKey: key)
            if w.bySandbox[sandboxId]?.isEmpty == true { w.bySandbox.removeValue(forKey: sandboxId) }
        }
    }
}
