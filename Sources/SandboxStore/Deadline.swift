import Synchronization

/// Runs work with a time limit that holds even when the work ignores cancellation (a query on a
/// connection that hangs): at the deadline the work is cancelled and the caller gets ``Passed`` at
/// once; the work's task ends when its own call gives up.
public enum Deadline {
    /// The deadline passed before the work finished.
    public struct Passed: Error, Sendable {}

    public static func run<T: Sendable>(_ limit: Duration, _ work: @escaping @Sendable () async throws -> T) async throws -> T {
        let race = Race<T>()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
                race.waiting.withLock { $0 = c }
                let timer = Task {
                    try? await Task.sleep(for: limit)
                    guard !Task.isCancelled, let c = race.take() else { return }
                    race.tasks.withLock { $0.work }?.cancel()
                    c.resume(throwing: Passed())
                }
                let job = Task {
                    let result: Result<T, any Error>
                    do { result = .success(try await work()) } catch { result = .failure(error) }
                    race.tasks.withLock { $0.timer }?.cancel()
                    race.take()?.resume(with: result)
                }
                race.tasks.withLock { $0 = (job, timer) }
                if Task.isCancelled { race.cancel() }
            }
        } onCancel: {
            race.cancel()
        }
    }

    /// The work, its timer and the caller's continuation, resumed by whichever ends first.
    private final class Race<T: Sendable>: Sendable {
        let waiting = Mutex<CheckedContinuation<T, any Error>?>(nil)
        let tasks = Mutex<(work: Task<Void, Never>?, timer: Task<Void, Never>?)>((nil, nil))

        func take() -> CheckedContinuation<T, any Error>? { waiting.withLock { $0.take() } }

        func cancel() {
            let (job, timer) = tasks.withLock { $0 }
            job?.cancel()
            timer?.cancel()
            take()?.resume(throwing: CancellationError())
        }
    }
}
