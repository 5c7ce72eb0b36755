import Foundation
import Hummingbird
import SandboxStore

/// Ends a long-lived stream when the API key that opened it is revoked (issue 17, low item):
/// every `interval` the key is authenticated again (a revocation may come from another process,
/// `sandboxer key revoke` on the data directory), and once it no longer is, the stream's work is
/// cancelled with an `unauthorized` problem. A store that cannot answer for a moment is not a
/// revocation.
enum KeyWatch {
    static let interval: Duration = .seconds(2)

    /// The bearer key of a request (already authenticated by ``AuthMiddleware``).
    static func key(of request: Request) -> String? {
        guard let header = request.headers[.authorization] else { return nil }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        return parts[1].trimmingCharacters(in: .whitespaces)
    }

    static var revoked: Problem {
        Problem(status: 401, code: "unauthorized", detail: "the API key of this stream was revoked; the stream is closed")
    }

    /// Sleeps while `key` stays valid; once it is revoked, runs `onRevoke` with the problem (a
    /// WebSocket writes it and closes). Cancelled with the stream it watches.
    static func untilRevoked(_ store: any SandboxStore, key: String?, onRevoke: @escaping @Sendable (Problem) async throws -> Void) async throws {
        do {
            try await whileValid(store, key: key) { try await Task.sleep(for: .seconds(366 * 86_400)) }
        } catch let p as Problem {
            try await onRevoke(p)
        }
    }

    /// Whether `key` is still valid, asked at most once per ``interval`` through `last` (for a
    /// stream that checks between its own events); a store that does not answer is no revocation.
    static func stillValid(_ store: any SandboxStore, key: String?, last: inout ContinuousClock.Instant) async -> Bool {
        guard let key, ContinuousClock.now - last >= interval else { return true }
        last = .now
        do { return try await store.authenticate(key: key) != nil } catch { return true }
    }

    /// Runs `body` while `key` stays valid; throws ``revoked`` (cancelling `body`) once it is not.
    static func whileValid<T: Sendable>(_ store: any SandboxStore, key: String?, interval: Duration = KeyWatch.interval,
                                        _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        guard let key else { return try await body() }
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                while true {
                    try await Task.sleep(for: interval)
                    do {
                        if try await store.authenticate(key: key) == nil { throw revoked }
                    } catch let p as Problem {
                        throw p
                    } catch is CancellationError {
                        throw CancellationError()
                    } catch {
                        continue  // the store did not answer: no evidence of a revocation
                    }
                }
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let value = first else { throw revoked }
            return value
        }
    }
}
