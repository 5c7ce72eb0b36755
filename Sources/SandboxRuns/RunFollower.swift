import Foundation
import SandboxCore
import SandboxStore

/// Follows a run's output from the store until the run ends: what `GET /v1/runs/{id}/logs` with
/// `Accept: text/event-stream`, `sandboxer logs -f` and the monitor's log tail show. Works for a
/// run executing on any node (output reaches the store in batches every 250 ms).
public enum RunFollower {
    public enum Event: Sendable, Equatable {
        /// A (new) attempt's output follows.
        case attempt(Int)
        case output(StdStream, [UInt8])
        /// The run reached a final state (the last event).
        case end(RunRecord)
    }

    /// Events of run `id` from attempt `attempt` (nil: the current one, following later attempts);
    /// finishes after `.end`, or throws `not_found`.
    public static func follow(store: any RunStore, id: String, tenantId: String, attempt fixed: Int? = nil,
                              poll: Duration = .milliseconds(250)) -> AsyncThrowingStream<Event, any Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    try await produce(store: store, id: id, tenantId: tenantId, fixed: fixed, poll: poll, continuation)
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    static func produce(store: any RunStore, id: String, tenantId: String, fixed: Int?, poll: Duration,
                        _ out: AsyncThrowingStream<Event, any Error>.Continuation) async throws {
        let wake = WakeSignal()
        let changes = store.runChanges()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for await change in changes where change.runId == id { wake.signal() }
            }
            var attempt = fixed ?? 0
            var afterSeq = 0
            var announced = 0
            while !Task.isCancelled {
                guard let run = try await store.run(id: id), run.tenantId == tenantId else { throw RunRules.notFound(id) }
                let current = fixed ?? run.attempts.count
                // Drain the attempt being shown, then move on to a newer one.
                while true {
                    if attempt > 0 {
                        let chunks = try await store.runLog(runId: id, attempt: attempt, afterSeq: afterSeq)
                        for c in chunks { out.yield(.output(c.stream, c.data)) }
                        afterSeq = chunks.last?.seq ?? afterSeq
                    }
                    guard attempt < current else { break }
                    attempt += 1
                    afterSeq = 0
                    if attempt > announced {
                        out.yield(.attempt(attempt))
                        announced = attempt
                    }
                }
                if run.state.isFinal {
                    out.yield(.end(run))
                    break
                }
                await wake.wait(timeout: poll)
            }
            group.cancelAll()
        }
    }
}
