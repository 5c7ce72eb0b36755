import Foundation
import Logging
import SandboxCore
import SandboxStore
import Synchronization

/// Collects an attempt's output as it is produced and writes it to the store in batches (every
/// ``flushInterval`` while the attempt runs, and once at its end), in the order it came.
final class RunLogBuffer: Sendable {
    let store: any RunStore
    let runId: String
    let attempt: Int
    let cap: Int
    let logger: Logger
    private let pending = Mutex<(chunks: [RunLogChunk], bytes: Int)>(([], 0))

    init(store: any RunStore, runId: String, attempt: Int, cap: Int, logger: Logger) {
        self.store = store
        self.runId = runId
        self.attempt = attempt
        self.cap = cap
        self.logger = logger
    }

    /// The output handler to give the backend.
    var handler: OutputHandler {
        { [self] stream, bytes in
            pending.withLock { p in
                // Past the cap nothing more is kept; no need to hold it in memory either.
                guard p.bytes < cap, !bytes.isEmpty else { return }
                if let last = p.chunks.last, last.stream == stream, last.data.count + bytes.count <= 64 << 10 {
                    p.chunks[p.chunks.count - 1].data += bytes
                } else {
                    p.chunks.append(RunLogChunk(seq: 0, stream: stream, data: bytes))
                }
                p.bytes += bytes.count
            }
        }
    }

    /// Whether everything collected so far is stored.
    var isEmpty: Bool { pending.withLock { $0.chunks.isEmpty } }

    /// Writes what was collected since the last flush.
    func flush() async {
        let chunks = pending.withLock { p -> [RunLogChunk] in
            defer { p.chunks.removeAll() }
            return p.chunks
        }
        guard !chunks.isEmpty else { return }
        do {
            try await store.appendRunLog(runId: runId, attempt: attempt, chunks: chunks, cap: cap)
        } catch {
            // Kept for the next flush (the last one runs uncancelled), in order.
            pending.withLock { $0.chunks.insert(contentsOf: chunks, at: 0) }
            if !Task.isCancelled, !StoreHealth.isOutage(error) {
                logger.error("run output not stored yet; will retry", metadata: ["run": "\(runId)", "error": "\(error)"])
            }
        }
    }
}
