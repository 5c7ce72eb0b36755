import Foundation
import SandboxCore
import Synchronization

/// Fans ``SandboxLifecycleEvent``s out to every subscriber of the event's tenant. Slow subscribers lose the
/// oldest events (a bounded buffer), never slow the manager down.
final class EventHub: Sendable {
    private struct Subscriber {
        var tenantId: String
        var continuation: AsyncStream<SandboxLifecycleEvent>.Continuation
    }
    private let subscribers = Mutex<[UInt64: Subscriber]>([:])
    private let counter = Mutex<UInt64>(0)

    /// A stream of the tenant's events from now on; ends when the consumer stops iterating.
    func subscribe(tenantId: String) -> AsyncStream<SandboxLifecycleEvent> {
        let key = counter.withLock { c -> UInt64 in c += 1; return c }
        let (stream, continuation) = AsyncStream<SandboxLifecycleEvent>.makeStream(bufferingPolicy: .bufferingNewest(1024))
        subscribers.withLock { $0[key] = Subscriber(tenantId: tenantId, continuation: continuation) }
        continuation.onTermination = { [weak self] _ in
            _ = self?.subscribers.withLock { $0.removeValue(forKey: key) }
        }
        return stream
    }

    func publish(_ event: SandboxLifecycleEvent) {
        let targets = subscribers.withLock { $0.values.filter { $0.tenantId == event.tenantId }.map(\.continuation) }
        for c in targets { c.yield(event) }
    }

    /// Ends every stream (server shutdown).
    func finishAll() {
        let all = subscribers.withLock { s -> [AsyncStream<SandboxLifecycleEvent>.Continuation] in
            let c = s.values.map(\.continuation)
            s.removeAll()
            return c
        }
        for c in all { c.finish() }
    }
}
