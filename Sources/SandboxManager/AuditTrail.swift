import Foundation
import SandboxCore
import Synchronization

/// The manager's ``AuditSink``: entries go through the ordered background ``Recorder``
/// (consecutive entries become one store append), and whoever follows a sandbox's trail is woken
/// once its entries are stored. Get it as ``SandboxManager/eventSink``.
public final class AuditTrail: AuditSink {
    private let pending = Mutex<[AuditEvent]>([])
    private let watchers = Mutex<(next: UInt64, bySandbox: [String: [UInt64: WakeSignal]])>((0, [:]))
    private let recorder: Recorder

    init(recorder: Recorder) {
        self.recorder = recorder
    }

    /// Queues `event` behind everything queued so far; never blocks. Entries recorded while a
    /// batch waits for the recorder join that batch, in their order.
    public func record(_ event: AuditEvent) {
        let first = pending.withLock { p in
            p.append(event)
            return p.count == 1
        }
        if first { recorder.enqueue(.events(self)) }
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
