import Synchronization

/// Fans run changes out to every subscriber of ``RunStore/runChanges()`` in this process. A slow
/// subscriber loses its oldest unread changes (bounded buffer), never blocks the store.
public final class RunChangeHub: Sendable {
    private let subscribers = Mutex<[Int: AsyncStream<RunChange>.Continuation]>([:])
    private let nextId = Atomic<Int>(0)

    public init() {}

    /// A new subscription; it ends when ``finish()`` is called or the consumer stops iterating.
    public func subscribe(bufferSize: Int = 4096) -> AsyncStream<RunChange> {
        let (stream, continuation) = AsyncStream<RunChange>.makeStream(bufferingPolicy: .bufferingNewest(bufferSize))
        let id = nextId.add(1, ordering: .relaxed).newValue
        subscribers.withLock { $0[id] = continuation }
        continuation.onTermination = { [weak self] _ in
            _ = self?.subscribers.withLock { $0.removeValue(forKey: id) }
        }
        return stream
    }

    public func publish(_ change: RunChange) {
        let all = subscribers.withLock { Array($0.values) }
        for c in all { c.yield(change) }
    }

    public func publish(_ changes: [RunChange]) {
        guard !changes.isEmpty else { return }
        let all = subscribers.withLock { Array($0.values) }
        for c in all { for change in changes { c.yield(change) } }
    }

    /// Ends every subscription (the store closed).
    public func finish() {
        let all = subscribers.withLock { s -> [AsyncStream<RunChange>.Continuation] in
            defer { s.removeAll() }
            return Array(s.values)
        }
        for c in all { c.finish() }
    }
}
