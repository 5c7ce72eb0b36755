import Foundation
import Logging
import PostgresNIO
import SandboxCore
import SandboxStore
import Synchronization

/// One `LISTEN sandboxer_runs` connection per process, fanned out by a ``RunChangeHub`` to every
/// ``RunStore/runChanges()`` stream. The connection is outside the pool (a pooled one would be
/// handed to queries); when it drops, the listener reconnects with a backoff (0.1 s doubling to
/// 5 s). Notifications sent while it is down are lost, so a worker also sleeps no longer than
/// ``RunStore/nextDueRun()`` says.
final class RunChangeListener: Sendable {
    let url: PostgresURL
    let channel: String
    let logger: Logger
    let health: StoreHealth
    let hub = RunChangeHub()
    private let task = Mutex<Task<Void, Never>?>(nil)

    init(url: PostgresURL, channel: String, health: StoreHealth, logger: Logger) {
        self.url = url
        self.health = health
        self.channel = channel
        self.logger = logger
    }

    /// Starts the listener task and returns once it listens (or throws why it could not connect).
    func start() async throws(SandboxError) {
        let (ready, signal) = AsyncStream.makeStream(of: SandboxError?.self)
        let listening = Task { await self.listen(ready: signal) }
        task.withLock { $0 = listening }
        for await failure in ready {
            if let failure { throw failure }
            return
        }
    }

    /// Ends the listener and every subscriber's stream.
    func stop() async {
        let listening = task.withLock { t in
            defer { t = nil }
            return t
        }
        listening?.cancel()
        await listening?.value
        hub.finish()
    }

    /// Connects, listens and forwards until cancelled; reconnects when the connection drops. The
    /// first attempt's outcome goes to `ready` (a failure ends the loop: `start` throws it).
    private func listen(ready: AsyncStream<SandboxError?>.Continuation) async {
        var delay = 0.1
        var first = true
        while !Task.isCancelled {
            do {
                let connection = try await PostgresConnection.connect(
                    configuration: try url.connectionConfiguration(), id: 1, logger: logger)
                do {
                    try await connection.listen(on: channel) { notifications in
                        if first {
                            first = false
                            ready.yield(nil)
                            ready.finish()
                        } else {
                            logger.notice("listening for run changes again", metadata: ["url": "\(url.display)"])
                        }
                        delay = 0.1
                        for try await notification in notifications {
                            if let change = RunChange(text: notification.payload) { hub.publish(change) }
                        }
                    }
                } catch {
                    try? await connection.close()
                    throw error
                }
                try? await connection.close()
            } catch {
                if first {
                    ready.yield(PostgresError.map(error, doing: "listening for run changes", url: url.display))
                    ready.finish()
                    return
                }
                if Task.isCancelled { break }
                logger.warning("the run-change listener lost its connection; reconnecting",
                               metadata: ["url": "\(url.display)", "error": "\(error)"])
                let mapped = PostgresError.map(error, doing: "listening for run changes", url: url.display)
                if StoreHealth.isOutage(mapped) { health.markDown(mapped.message) }
            }
            try? await Task.sleep(for: .seconds(delay))
            delay = min(delay * 2, 1)
        }
        if first { ready.finish() }
    }
}
