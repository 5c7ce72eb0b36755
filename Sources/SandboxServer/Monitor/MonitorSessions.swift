import Foundation

/// The execution monitor's logins, in memory only: a random session id (the `sandboxer_session`
/// cookie) maps to the caller whose API key was entered in the login form.
///
/// A session ends after `idleTimeout` without a request, after `maxAge` in any case, on logout, or
/// when the oldest sessions are dropped to stay under `capacity`. The key itself is kept (never sent
/// back to the browser) so the monitor can notice a revoked key and end the session.
public actor MonitorSessions {
    /// Settings of the session table.
    public struct Configuration: Sendable {
        public var idleTimeout: TimeInterval
        public var maxAge: TimeInterval
        public var capacity: Int
        public init(idleTimeout: TimeInterval = 8 * 3600, maxAge: TimeInterval = 24 * 3600, capacity: Int = 1000) {
            self.idleTimeout = idleTimeout
            self.maxAge = maxAge
            self.capacity = max(1, capacity)
        }
    }

    /// One login: who, with which key, since when.
    public struct Session: Sendable, Equatable {
        public var caller: Caller
        /// The API key entered at login (server memory only).
        public var key: String
        public var createdAt: Date
        public var lastSeen: Date
    }

    public nonisolated let configuration: Configuration
    private var sessions: [String: Session] = [:]

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    /// Starts a session and returns its id (256 random bits, hex), dropping expired sessions and, at
    /// capacity, the least recently used one.
    public func open(caller: Caller, key: String, now: Date = Date()) -> String {
        removeExpired(now: now)
        while sessions.count >= configuration.capacity,
              let oldest = sessions.min(by: { $0.value.lastSeen < $1.value.lastSeen })?.key {
            sessions.removeValue(forKey: oldest)
        }
        let id = Self.newSessionID()
        sessions[id] = Session(caller: caller, key: key, createdAt: now, lastSeen: now)
        return id
    }

    /// The live session with this id (its idle clock restarted), or nil.
    public func session(_ id: String?, now: Date = Date()) -> Session? {
        guard let id, var session = sessions[id] else { return nil }
        guard !isExpired(session, now: now) else {
            sessions.removeValue(forKey: id)
            return nil
        }
        session.lastSeen = now
        sessions[id] = session
        return session
    }

    /// Ends a session (logout, revoked key).
    public func close(_ id: String?) {
        guard let id else { return }
        sessions.removeValue(forKey: id)
    }

    /// How many sessions are held (expired ones included until the next `open`).
    public var count: Int { sessions.count }

    private func isExpired(_ s: Session, now: Date) -> Bool {
        now.timeIntervalSince(s.lastSeen) > configuration.idleTimeout || now.timeIntervalSince(s.createdAt) > configuration.maxAge
    }

    private func removeExpired(now: Date) {
        sessions = sessions.filter { !isExpired($0.value, now: now) }
    }

    static func newSessionID() -> String {
        var rng = SystemRandomNumberGenerator()
        return (0..<4).map { _ in
            let hex = String(rng.next() as UInt64, radix: 16)
            return String(repeating: "0", count: 16 - hex.count) + hex
        }.joined()
    }
}
