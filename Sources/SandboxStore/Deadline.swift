import Synchronization

/// Runs work with a time limit that holds even when the work ignores cancellation (a query on a
/// connection that hangs): at the deadline the work is cancelled and the caller gets ``Passed`` at
/// once; the work's task ends when its own call gives up. ``Call`` adds a hook for slow work and
/// an abort from outside (the store declared down while the call waits). Cancelling the caller
/// cancels the work and waits for its answer.
public enum Deadline {
    /// The deadline passed before the work finished.
    public struct Passed: Error, Sendable {}

    public static func run<T: Sendable>(_ limit: Duration, _ work: @escaping @Sendable () async throws -> T) async throws -> T {
        try await Call<T>().run(limit: limit, work)
    }

    /// One run of work that ends at whichever comes first: the work, its deadline, or ``abort(_:)``.
    public final class Call<T: Sendable>: Sendable {
        private let waiting = Mutex<CheckedContinuation<T, any Error>?>(nil)
        private let tasks = Mutex<(work: Task<Void, Never>?, timer: Task<Void, Never>?)>((nil, nil))

        public init() {}

        /// Runs `work`; after `slowAfter` (when given) `onSlow` runs once while the work goes on.
        public func run(limit: Duration, slowAfter: Duration? = nil, onSlow: (@Sendable () -> Void)? = nil,
                        _ work: @escaping @Sendable () async throws -> T) async throws -> T {
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
                    waiting.withLock { $0 = c }
                    let timer = Task { [self] in
                        var left = limit
                        if let slowAfter, slowAfter < limit {
                            try? await Task.sleep(for: slowAfter)
                            if Task.isCancelled { return }
                            onSlow?()
                            left = limit - slowAfter
                        }
                        try? await Task.sleep(for: left)
                        guard !Task.isCancelled else { return }
                        abort(Passed())
                    }
                    let job = Task { [self] in
                        let result: Result<T, any Error>
                        do { result = .success(try await work()) } catch { result = .failure(error) }
                        tasks.withLock { $0.timer }?.cancel()
                        take()?.resume(with: result)
                    }
                    tasks.withLock { $0 = (job, timer) }
                    if Task.isCancelled { cancelWork() }
                }
            } onCancel: {
                cancelWork()
            }
        }

        /// The caller was cancelled: the work is cancelled too and its own answer awaited (a write
        /// that commits anyway must not look like one that did not, or a retry would repeat it).
        private func cancelWork() {
            let (job, timer) = tasks.withLock { $0 }
            timer?.cancel()
            job?.cancel()
        }

        /// Ends the call now with `error` (the work and the timer are cancelled); nothing when it ended.
        public func abort(_ error: any Error) {
            let (job, timer) = tasks.withLock { $0 }
            guard let c = take() else { return }
            job?.cancel()
            timer?.cancel()
            c.resume(throwing: error)
        }

        private func take() -> CheckedContinuation<T, any Error>? { waiting.withLock { $0.take() } }
    }
}
